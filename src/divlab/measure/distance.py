"""Distances between Task2Vec embeddings.

The Task2Vec normalised cosine (Achille et al. 2019, used by Beyond Scale):
``d(a, b) = cosine_distance(a / (a + b + eps), b / (a + b + eps))``, which compares the
*relative* importance of each parameter for the two tasks; plain cosine distance as an
option. Both are 0 for identical embeddings and symmetric.
"""

from __future__ import annotations

import numpy as np

from divlab.errors import ConfigError

EPS = 1e-8
DISTANCES = ("normalized_cosine", "cosine")


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        return 0.0 if np.allclose(a, b) else 1.0
    return float(1.0 - np.dot(a, b) / norm)


def normalized_cosine_distance(a: np.ndarray, b: np.ndarray, eps: float = EPS) -> float:
    total = a + b + eps
    return cosine_distance(a / total, b / total)


def distance(a: np.ndarray, b: np.ndarray, kind: str = "normalized_cosine") -> float:
    if kind == "normalized_cosine":
        return normalized_cosine_distance(a, b)
    if kind == "cosine":
        return cosine_distance(a, b)
    raise ConfigError(f"unknown distance {kind!r}; choose one of {', '.join(DISTANCES)}")


def distance_matrix(
    rows: list[np.ndarray], columns: list[np.ndarray] | None = None, kind: str = "normalized_cosine"
) -> np.ndarray:
    """Pairwise distances (rows x columns; columns default to rows, diagonal 0)."""
    same = columns is None
    columns = rows if columns is None else columns
    out = np.zeros((len(rows), len(columns)))
    for i, a in enumerate(rows):
        for j, b in enumerate(columns):
            if same and j <= i:
                continue
            out[i, j] = distance(a, b, kind)
            if same:
                out[j, i] = out[i, j]
    return out
