"""Curate data sets: exact and near-duplicate removal (more curation methods to come)."""
