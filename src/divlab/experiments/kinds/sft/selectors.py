"""Choose ``N`` instruction examples from a pool, and say why (BRIEF section 11).

Each selector returns the pool positions in the order chosen and one reason row per choice:

* ``random``: uniform without replacement (seeded).
* ``longest``: the ``N`` longest responses ("Long is more", Zhao et al. 2024); ties in a
  seeded random order.
* ``quality``: the ``N`` best ``quality`` scores (higher = better, e.g. minus the base
  model's loss on the response), AlpaGasus-like (Chen et al. 2023); ties seeded.
* ``k-center``: k-center greedy (Sener & Savarese 2018) on unit-normalised ``embeddings``
  with Euclidean distance: a seeded first point, then each time the point farthest from
  the chosen set, ``argmax_i min_{j in S} ||u_i - u_j||``; the distance to the set is
  updated with the newest point only, O(N x pool x D).
* ``vendi-greedy``: each step adds the candidate that maximises the Vendi score
  ``exp(H(eig(K_S / |S|)))`` (Friedman & Dieng 2023) of the chosen set's cosine kernel,
  over a fresh seeded sample of ``vendi_candidates`` remaining points; the eigenvalues
  come from the |S| x |S| kernel or the D x D Gram ``U_S^T U_S`` (same non-zero spectrum),
  whichever is smaller, batched over candidates.
* ``quality-diversity`` (Deita-like, Liu et al. 2024): through the pool by quality, best
  first, take an example only if its cosine distance to every chosen one exceeds ``tau``
  (default 0.1, i.e. cosine similarity below 0.9, Deita's threshold); if fewer than ``N``
  pass, fill with the best remaining by quality, and the reasons say so. Anisotropic
  embeddings (all similarities near 1) need a smaller ``tau``: the ``filled`` count in the
  reasons shows when the threshold let too few through.

``dedup_first`` drops exact (prompt, response) duplicates before any selector (the first
occurrence is kept; ``dedup``), and ``near_threshold`` also drops near duplicates by
embedding (``near_dedup``: cosine similarity above the threshold, the longer response
kept). ``quality`` and ``embeddings`` are aligned with the pool's rows.

Hand-written: these are small greedy loops over arrays (numpy only); the libraries that
ship them (Deita, DataComp tooling) bring models and pipelines divlab does not need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from divlab import seeds
from divlab.errors import ConfigError, DataError, did_you_mean
from divlab.measure.baselines import unit_rows

SELECTORS = ("random", "longest", "quality", "k-center", "vendi-greedy", "quality-diversity")
NEEDS_QUALITY = ("quality", "quality-diversity")
NEEDS_EMBEDDINGS = ("k-center", "vendi-greedy", "quality-diversity")
DEFAULT_TAU = 0.1  # cosine distance; similarity 0.9 as Deita's repr filter
DEFAULT_NEAR_THRESHOLD = 0.95  # cosine similarity (the seed notes: drop > 0.9-0.95)
DEFAULT_VENDI_CANDIDATES = 256

REASON_COLUMNS = ("position", "example_id", "rank", "selector", "score", "distance", "reason")
REMOVED_COLUMNS = (
    "position",
    "example_id",
    "kept_position",
    "kept_example_id",
    "similarity",
    "kind",
)


@dataclass(frozen=True)
class Selection:
    """``indices``: pool row positions in the order chosen. ``reasons``: one row per
    choice (``REASON_COLUMNS``; ``score`` is the selector's own score: response length,
    quality, Vendi score after the addition; ``distance`` the distance to the set chosen
    before it where the selector uses one). ``removed``: rows dropped by dedup first
    (``REMOVED_COLUMNS``)."""

    indices: np.ndarray
    reasons: pd.DataFrame
    removed: pd.DataFrame = field(default_factory=lambda: _removed_frame([]))


def _removed_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(REMOVED_COLUMNS))


def _responses(pool: pd.DataFrame) -> list:
    if not isinstance(pool, pd.DataFrame) or "response" not in pool.columns or len(pool) == 0:
        raise ConfigError("the pool has no responses: it needs at least one row with a response")
    responses = pool["response"].tolist()
    if all(_length(r) == 0 for r in responses):
        raise ConfigError("the pool has no responses: every response is empty")
    return responses


def _length(response) -> int:
    if response is None or (isinstance(response, float) and np.isnan(response)):
        return 0
    return len(response)


def _example_ids(pool: pd.DataFrame) -> np.ndarray:
    if "example_id" in pool.columns:
        return pool["example_id"].to_numpy()
    return np.arange(len(pool))


def _key(value) -> bytes:
    if isinstance(value, str):
        return b"s" + value.encode()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return b"n"
    return b"a" + np.asarray(value, dtype=np.int64).tobytes()


def dedup(pool: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Exact duplicates of (prompt, response): ``(kept positions, removed)``, the first
    occurrence kept; ``removed`` names the kept row each dropped row duplicates."""
    _responses(pool)
    prompts = pool["prompt"].tolist() if "prompt" in pool.columns else [None] * len(pool)
    ids = _example_ids(pool)
    first: dict[tuple[bytes, bytes], int] = {}
    kept, removed = [], []
    for position, (prompt, response) in enumerate(
        zip(prompts, pool["response"].tolist(), strict=True)
    ):
        key = (_key(prompt), _key(response))
        if key in first:
            original = first[key]
            removed.append(
                {
                    "position": position,
                    "example_id": ids[position],
                    "kept_position": original,
                    "kept_example_id": ids[original],
                    "similarity": 1.0,
                    "kind": "exact",
                }
            )
        else:
            first[key] = position
            kept.append(position)
    return np.asarray(kept, dtype=np.int64), _removed_frame(removed)


def _unit_rows(embeddings, count: int) -> np.ndarray:
    """The embeddings of the pool's ``count`` rows scaled to unit length
    (``baselines.unit_rows``: NaN, infinities and all-zero rows refused)."""
    matrix = np.asarray(embeddings, dtype=float)
    if matrix.ndim != 2 or len(matrix) != count:
        raise ConfigError(
            f"embeddings must be a (pool rows x dims) array with {count} rows, got shape "
            f"{matrix.shape}"
        )
    return unit_rows(matrix)


def near_dedup(
    embeddings, pool: pd.DataFrame, threshold: float = DEFAULT_NEAR_THRESHOLD
) -> tuple[np.ndarray, pd.DataFrame]:
    """Near duplicates by embedding: ``(kept positions, removed)``. Rows go longest
    response first (ties: earlier row); a row is dropped when its cosine similarity to an
    already kept row exceeds ``threshold``, so of a near-duplicate group the longer
    response stays. ``removed`` names the most similar kept row."""
    responses = _responses(pool)
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"near-dedup threshold must be in (0, 1] (got {threshold})")
    unit = _unit_rows(embeddings, len(pool))
    ids = _example_ids(pool)
    lengths = np.array([_length(r) for r in responses])
    order = np.lexsort((np.arange(len(pool)), -lengths))
    nearest = np.full(len(pool), -np.inf)  # max similarity to the kept set
    nearest_kept = np.full(len(pool), -1)
    kept, removed = [], []
    for position in order:
        if nearest[position] > threshold:
            removed.append(
                {
                    "position": int(position),
                    "example_id": ids[position],
                    "kept_position": int(nearest_kept[position]),
                    "kept_example_id": ids[nearest_kept[position]],
                    "similarity": float(nearest[position]),
                    "kind": "near",
                }
            )
            continue
        kept.append(int(position))
        similarity = unit @ unit[position]
        closer = similarity > nearest
        nearest[closer] = similarity[closer]
        nearest_kept[closer] = position
    return np.sort(np.asarray(kept, dtype=np.int64)), _removed_frame(removed)


def _tie_order(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions by descending score, ties in a seeded random order."""
    return np.lexsort((rng.permutation(len(scores)), -scores))


def _unit_distance(unit: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``||u_i - v||`` for unit rows: ``sqrt(2 - 2 u_i . v)`` (one matrix-vector product)."""
    return np.sqrt(np.clip(2.0 - 2.0 * (unit @ row), 0.0, None))


def _k_center(unit: np.ndarray, n: int, rng: np.random.Generator):
    chosen = [int(rng.integers(len(unit)))]
    distances = [np.inf]
    to_set = _unit_distance(unit, unit[chosen[0]])
    to_set[chosen[0]] = -1.0  # never again, even when only exact copies are left
    for _ in range(n - 1):
        pick = int(np.argmax(to_set))
        chosen.append(pick)
        distances.append(float(to_set[pick]))
        to_set = np.minimum(to_set, _unit_distance(unit, unit[pick]))
        to_set[pick] = -1.0
    return np.asarray(chosen), np.asarray(distances)


def _entropy_exp(eigenvalues: np.ndarray) -> np.ndarray:
    """``exp(-sum l log l)`` over the last axis (non-positive eigenvalues count as 0)."""
    positive = np.clip(eigenvalues, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(positive > 0, positive * np.log(positive), 0.0)
    return np.exp(-terms.sum(axis=-1))


def _vendi_greedy(unit: np.ndarray, n: int, rng: np.random.Generator, candidates: int):
    count, dims = unit.shape
    chosen = [int(rng.integers(count))]
    scores = [1.0]  # the Vendi score of one point
    available = np.ones(count, dtype=bool)
    available[chosen[0]] = False
    gram = np.outer(unit[chosen[0]], unit[chosen[0]])  # U_S^T U_S, D x D
    for size in range(2, n + 1):
        pool = np.flatnonzero(available)
        sample = rng.permutation(pool)[:candidates]
        rows = unit[sample]
        if size <= dims:  # |S| x |S| kernels with the candidate as the last row
            base = unit[chosen] @ unit[chosen].T
            cross = rows @ unit[chosen].T  # (m, |S|-1)
            kernels = np.empty((len(sample), size, size))
            kernels[:, :-1, :-1] = base
            kernels[:, :-1, -1] = cross
            kernels[:, -1, :-1] = cross
            kernels[:, -1, -1] = 1.0
        else:  # D x D Grams: same non-zero eigenvalues
            kernels = gram[None] + rows[:, :, None] * rows[:, None, :]
        values = _entropy_exp(np.linalg.eigvalsh(kernels) / size)
        best = int(np.argmax(values))
        pick = int(sample[best])
        chosen.append(pick)
        scores.append(float(values[best]))
        available[pick] = False
        gram = gram + np.outer(unit[pick], unit[pick])
    return np.asarray(chosen), np.asarray(scores)


def _quality_diversity(unit: np.ndarray, quality: np.ndarray, n: int, tau: float, rng):
    order = _tie_order(quality, rng)
    nearest = np.full(len(unit), -np.inf)  # max cosine similarity to the chosen set
    chosen, distances, passed = [], [], []
    for position in order:
        distance = 1.0 - nearest[position]
        if distance > tau:
            chosen.append(int(position))
            distances.append(float(distance))
            passed.append(True)
            nearest = np.maximum(nearest, unit @ unit[position])
            if len(chosen) == n:
                break
    if len(chosen) < n:
        taken = set(chosen)
        for position in order:
            if int(position) not in taken:
                chosen.append(int(position))
                distances.append(float(1.0 - nearest[position]))
                passed.append(False)
                if len(chosen) == n:
                    break
    return np.asarray(chosen), np.asarray(distances), np.asarray(passed)


def select(
    name: str,
    pool: pd.DataFrame,
    n: int,
    *,
    seed: int = 0,
    quality=None,
    embeddings=None,
    dedup_first: bool = False,
    near_threshold: float | None = None,
    tau: float = DEFAULT_TAU,
    vendi_candidates: int = DEFAULT_VENDI_CANDIDATES,
) -> Selection:
    """``n`` rows of ``pool`` chosen by selector ``name`` (one of ``SELECTORS``; module
    docstring), with the reason for each. Every random choice derives from ``seed``."""
    if name not in SELECTORS:
        raise ConfigError(
            f"unknown selector {name!r}{did_you_mean(name, SELECTORS)} (valid selectors: "
            f"{list(SELECTORS)})"
        )
    responses = _responses(pool)
    n = int(n)
    if n < 1:
        raise ConfigError(f"a selection needs n >= 1 examples (got {n})")
    if n > len(pool):
        raise ConfigError(f"cannot select {n} examples from a pool of {len(pool)}")
    if not 0.0 <= tau < 2.0:  # also rejects NaN
        raise ConfigError(f"tau must be a cosine distance in [0, 2) (got {tau})")
    if vendi_candidates < 1:
        raise ConfigError(f"vendi_candidates must be >= 1 (got {vendi_candidates})")

    scores = None
    if name in NEEDS_QUALITY:
        if quality is None:
            raise ConfigError(f"selector {name!r} needs a quality score per pool row")
        scores = np.asarray(quality, dtype=float).reshape(-1)
        if len(scores) != len(pool):
            raise ConfigError(
                f"quality has {len(scores)} values for a pool of {len(pool)} rows; align them"
            )
        if not np.isfinite(scores).all():
            raise DataError("quality scores contain NaN or infinite values")
    unit = None
    if name in NEEDS_EMBEDDINGS or near_threshold is not None:
        if embeddings is None:
            why = f"selector {name!r}" if name in NEEDS_EMBEDDINGS else "near_threshold"
            raise ConfigError(f"{why} needs embeddings, one row per pool row")
        unit = _unit_rows(embeddings, len(pool))

    candidates = np.arange(len(pool))
    removed = [_removed_frame([])]
    if dedup_first:
        candidates, exact = dedup(pool)
        removed.append(exact)
    if near_threshold is not None:
        kept, near = near_dedup(unit[candidates], pool.iloc[candidates], near_threshold)
        near[["position", "kept_position"]] = candidates[
            near[["position", "kept_position"]].to_numpy(dtype=np.int64)
        ]
        candidates = candidates[kept]
        removed.append(near)
    removed_frame = pd.concat([r for r in removed if len(r)] or removed[:1], ignore_index=True)
    if n > len(candidates):
        raise ConfigError(
            f"cannot select {n} examples: {len(candidates)} of the pool's {len(pool)} are left "
            "after dedup"
        )

    rng = seeds.rng(seed, "sft-select", name)
    lengths = np.array([_length(responses[p]) for p in candidates], dtype=float)
    distance = np.full(n, np.nan)
    score = np.full(n, np.nan)
    if name == "random":
        local = rng.choice(len(candidates), size=n, replace=False)
        text = ["uniform draw"] * n
    elif name == "longest":
        local = _tie_order(lengths, rng)[:n]
        score = lengths[local]
        text = [f"response length {int(v)}" for v in score]
    elif name == "quality":
        local = _tie_order(scores[candidates], rng)[:n]
        score = scores[candidates][local]
        text = [f"quality {v:.4g}" for v in score]
    elif name == "k-center":
        local, distance = _k_center(unit[candidates], n, rng)
        text = ["seeded first center"] + [
            f"farthest from the chosen set (distance {d:.4g})" for d in distance[1:]
        ]
    elif name == "vendi-greedy":
        local, score = _vendi_greedy(unit[candidates], n, rng, int(vendi_candidates))
        text = ["seeded first point"] + [
            f"largest Vendi score of the set with it ({v:.4g})" for v in score[1:]
        ]
    else:  # quality-diversity
        local, distance, passed = _quality_diversity(
            unit[candidates], scores[candidates], n, float(tau), rng
        )
        score = scores[candidates][local]
        filled = int((~passed).sum())
        text = [
            f"quality {q:.4g}, cosine distance {d:.4g} > tau {tau:g} to the chosen set"
            if ok
            else f"filled by quality {q:.4g} (only {n - filled} passed tau {tau:g})"
            for q, d, ok in zip(score, distance, passed, strict=True)
        ]
    positions = candidates[np.asarray(local, dtype=np.int64)]
    reasons = pd.DataFrame(
        {
            "position": positions,
            "example_id": _example_ids(pool)[positions],
            "rank": np.arange(n),
            "selector": name,
            "score": score,
            "distance": distance,
            "reason": text,
        }
    )
    return Selection(indices=positions, reasons=reasons, removed=removed_frame)
