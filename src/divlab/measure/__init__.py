"""Measure data sets: Task2Vec diversity and alignment coefficients, with their bounds."""

from divlab.measure.batches import Batches, make_batches
from divlab.measure.distance import distance, distance_matrix, normalized_cosine_distance
from divlab.measure.diversity import (
    DiversitySettings,
    ProbeData,
    alignment,
    bounds,
    diversity_coefficient,
    normalized_diversity,
    probe_documents,
)
from divlab.measure.probe import Probe, load_probe

__all__ = [
    "Batches",
    "DiversitySettings",
    "Probe",
    "ProbeData",
    "alignment",
    "bounds",
    "distance",
    "distance_matrix",
    "diversity_coefficient",
    "load_probe",
    "make_batches",
    "normalized_cosine_distance",
    "normalized_diversity",
    "probe_documents",
]
