"""The measures beside Task2Vec, for one condition's training set (BRIEF section 10).

Every condition gets, on its training documents (tokens) and the eval set's:

* the probe-free baselines of ``divlab.measure.baselines``: Vendi of bigram counts,
  compression ratio, distinct-n (n = 1..4), Self-BLEU, each with its CI, every one on
  ``sample`` documents, the same number for every condition (each depends on the number
  of documents it sees);
* with a probe (Task2Vec enabled): Vendi and dispersion of the probe's mean-pooled
  document embeddings (``divlab.measure.suite.sample_embeddings``: at most ``2 x sample``);
* the rival explanations: overlap with the eval set (n-gram Jaccard, unigram
  cross-entropy), the set's size (documents, tokens, mean length) and, on GINC, its
  ground-truth coverage of the eval concepts and typicality (``ground_truth_rivals``).

``MEASURE_COLUMNS`` names the per-condition columns these become in ``results.parquet``
and whether a higher value means a MORE diverse set (None for a rival, which has no
direction of diversity).
"""

from __future__ import annotations

import numpy as np

from divlab.data.ginc.family import ConceptFamily, FamilySpec
from divlab.data.ginc.truth import ConceptGeometry, ground_truth_rivals
from divlab.measure import baselines, suite

# column -> (the measure behind it, higher = more diverse?)
MEASURE_COLUMNS = {
    "diversity": ("Task2Vec diversity", True),
    "vendi_ngram": ("Vendi score, bigram counts", True),
    "vendi_embedding": ("Vendi score, probe embeddings", True),
    "embedding_dispersion": ("embedding dispersion", True),
    "distinct_n": ("distinct-n, mean of n = 1..4", True),
    "compression_ratio": ("compression ratio (gzip)", False),
    "self_bleu": ("Self-BLEU", False),
}
RIVAL_COLUMNS = {
    "k": "number of concepts",
    "overlap_jaccard2": "eval overlap, bigram Jaccard",
    "overlap_cross_entropy": "eval unigram cross-entropy",
    "train_tokens": "training tokens",
    "coverage_distance": "eval coverage distance (GT)",
    "typicality_distance": "train typicality distance (GT)",
}


def condition_measures(
    train: list,
    eval_: list,
    settings,
    vocab_size: int | None = None,
    embeddings: np.ndarray | None = None,
) -> dict:
    """Every baseline and overlap measure of one training set (dicts as the baselines
    return them: value, CI, settings, seconds). Distinct-n and the compression ratio are
    taken on a seeded sample of ``settings.sample`` documents, the same number for every
    condition: on a whole set they fall as the set grows (more documents, more repeated
    n-grams), which would order sets of unequal size by size."""
    s = settings
    same_size = suite.fixed_sample(train, s.sample, s.seed)
    out = {
        "vendi_ngram": baselines.vendi_ngram(
            train, n=s.ngram, sample=s.sample, seed=s.seed, rounds=s.rounds
        ),
        "compression_ratio": baselines.compression_ratio(
            same_size, vocab_size=vocab_size, seed=s.seed, rounds=s.rounds
        ),
        "distinct_n": baselines.distinct_n(same_size, seed=s.seed, rounds=s.rounds),
        "self_bleu": baselines.self_bleu(train, sample=s.sample, seed=s.seed, rounds=s.rounds),
        "eval_overlap": baselines.eval_overlap(train, eval_, seed=s.seed, rounds=s.rounds),
        "set": baselines.set_statistics(train),
    }
    if embeddings is not None:
        out["vendi_embedding"] = baselines.vendi_embedding(
            embeddings, sample=s.sample, seed=s.seed, rounds=s.rounds
        )
        out["embedding_dispersion"] = baselines.embedding_dispersion(
            embeddings, seed=s.seed, rounds=s.rounds
        )
    return out


def ginc_rivals(summary: dict, eval_summary: dict, geometry: ConceptGeometry | None) -> tuple:
    """Coverage and typicality of a GINC training set against the eval concepts (from the
    data sets' ``summary.json``), and the geometry to reuse for the next condition."""
    if geometry is None:
        family = ConceptFamily(FamilySpec(**summary["family"]))
        geometry = ConceptGeometry(family)
    weights = summary["splits"]["train"].get("weights")
    rivals = ground_truth_rivals(
        geometry.family,
        summary["concepts"]["ids"],
        eval_summary["concepts"]["ids"],
        weights=weights,
        geometry=geometry,
    )
    return rivals, geometry


def columns(record: dict) -> dict:
    """The per-condition columns of ``results.parquet`` from a measures record (None
    where a measure was not taken): each value with its CI."""
    side = record.get("baselines") or {}
    rivals = record.get("rivals") or {}
    out: dict = {}
    for name in (
        "vendi_ngram",
        "vendi_embedding",
        "embedding_dispersion",
        "distinct_n",
        "compression_ratio",
        "self_bleu",
    ):
        result = side.get(name) or {}
        ci = result.get("ci") or [None, None]
        out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = result.get("value"), *ci
        out[f"{name}_seconds"] = result.get("seconds")
    out["diversity_seconds"] = (record.get("diversity") or {}).get("seconds")
    overlap = side.get("eval_overlap") or {}
    jaccard = (overlap.get("jaccard") or {}).get("2") or {}
    cross = overlap.get("cross_entropy") or {}
    out["overlap_jaccard2"] = jaccard.get("value")
    out["overlap_cross_entropy"] = cross.get("value")
    statistics = side.get("set") or {}
    out["train_documents"] = statistics.get("documents")
    out["train_tokens"] = statistics.get("tokens")
    out["coverage_distance"] = rivals.get("eval_coverage_distance")
    out["typicality_distance"] = rivals.get("train_typicality_distance")
    truth = record.get("ground_truth") or {}
    out["gt_effective_distinct"] = truth.get("effective_distinct_concepts")
    out["gt_mean_hellinger"] = truth.get("mean_pairwise_hellinger")
    alignment = record.get("alignment") or {}
    energy_ci = alignment.get("energy_distance_ci95") or [None, None]
    out["energy_distance"] = alignment.get("energy_distance")
    out["energy_distance_ci_low"], out["energy_distance_ci_high"] = energy_ci
    return out
