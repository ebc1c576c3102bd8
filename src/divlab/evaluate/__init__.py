"""Metrics on a checkpoint: loss and oracle gap, ICL exact match, continuations, speed."""
