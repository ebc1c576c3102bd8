"""Domains: named groups of GINC concepts, and training sets built from them.

Shared by ``kind: mixtures`` (a training set per mixture of domains) and ``kind:
curriculum`` (one training set written in several document orders). BRIEF section 9: on
GINC, concept groups are domains.

* A domain's **pool** is a GINC training set of its concepts (``ginc_training_set``),
  large enough for a share of 1 (``n_docs`` documents of ``training_data.doc_length``).
* A **mixture** ``r`` (weights over domains, summing to 1) of ``n_docs`` documents takes
  ``n_i`` documents from pool ``i``, with ``n_i`` the largest-remainder rounding of
  ``r_i * n_docs``: ``|n_i - r_i n_docs| < 1``, so every domain's token share is within one
  document of ``r_i`` (all documents have the same length). Documents are drawn without
  replacement by a seeded generator; each keeps its ``concept`` and gains a ``domain``.
* An **order** is a permutation of those documents: ``shuffle`` (uniform), ``staged``
  (domain after domain, shuffled within a stage) or ``schedule`` (each domain's documents
  placed at the quantiles of its piecewise-linear weight over training progress). Training
  with ``shuffle: false`` then visits them in that order, so every order of the same
  documents is the same multiset.
* The **eval set** holds ``eval.n_docs`` documents of each domain (one GINC eval split per
  domain), interleaved round-robin so that the first ``limit`` documents the evaluation
  scores are balanced across domains; per-domain losses are token-weighted means of the
  per-concept losses that every run records.

Budget: ``n_docs = ceil(trained tokens / (doc_length + 1))`` (packing appends ``<eos>`` to
each document), one pass over the data: at most part of the last document goes unseen.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from divlab import seeds
from divlab.data.store import TokenDataset, open_dataset, write_dataset
from divlab.errors import ConfigError, DataError
from divlab.experiments.data import ginc_eval_set, ginc_training_set
from divlab.experiments.ids import relative, stable_hash
from divlab.specs import Spec


class DomainSpec(Spec):
    """One domain: a name and its GINC concept ids (eval concepts, 0 .. eval.n_concepts-1)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    concepts: list[int] = Field(..., min_length=1)

    @field_validator("concepts")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if min(v) < 0 or len(set(v)) != len(v):
            raise ValueError("concepts must be distinct concept ids >= 0")
        return v


def check_domains(domains: list[DomainSpec], n_eval_concepts: int | None = None) -> None:
    """Raise ValueError (inside a spec validator: one ConfigError) unless the domains have
    distinct names, share no concept, and (given ``n_eval_concepts``) use only eval
    concepts, whose documents every run is scored on."""
    if len(domains) < 2:
        raise ValueError("list at least 2 domains (a mixture of one domain is that domain)")
    names = [d.name for d in domains]
    if len(set(names)) != len(names):
        raise ValueError(f"domain names must be distinct, got {names}")
    if "all" in names:
        raise ValueError("'all' names every domain together; call the domain something else")
    owner: dict[int, str] = {}
    for domain in domains:
        for concept in domain.concepts:
            if concept in owner:
                raise ValueError(
                    f"domains {owner[concept]!r} and {domain.name!r} share concept {concept}; "
                    "a concept belongs to one domain (remove it from one of them)"
                )
            owner[concept] = domain.name
    if n_eval_concepts is not None:
        unknown = sorted(c for c in owner if c >= n_eval_concepts)
        if unknown:
            raise ValueError(
                f"unknown concept(s) {unknown}: domains draw on the eval concepts 0 .. "
                f"{n_eval_concepts - 1} (eval.n_concepts = {n_eval_concepts}); raise "
                "eval.n_concepts or drop them"
            )


def n_documents(spec) -> int:
    """Documents in one pass of the spec's trained tokens (see the module docstring)."""
    trained = (spec.token_budget // spec.batch_tokens) * spec.batch_tokens
    return math.ceil(trained / (spec.training_data.doc_length + 1))


# ---- data sets ---------------------------------------------------------------------------


def domain_pools(spec, root: Path, domains: list[DomainSpec], n_docs: int) -> dict[str, Path]:
    """Each domain's GINC pool of ``n_docs`` documents (enough for a share of 1)."""

    n_tokens = n_docs * spec.training_data.doc_length
    return {
        d.name: ginc_training_set(
            spec,
            root,
            f"domain-{d.name}",
            d.concepts,
            _own_seed(spec.training_data.seed, d),
            n_tokens=n_tokens,
        )
        for d in domains
    }


def _own_seed(seed: int, domain: DomainSpec) -> int:
    """Each domain's documents from their own random stream (domains of equally many
    concepts would otherwise draw correlated documents)."""
    return int(seeds.rng(seed, "domain", domain.name).integers(2**31))


def domain_eval_set(spec, root: Path, domains: list[DomainSpec]) -> Path:
    """The eval set: ``eval.n_docs`` documents of each domain, interleaved round-robin,
    with a ``domain`` column (see the module docstring). Generated once."""

    parts = [
        ginc_eval_set(spec, root, d.concepts, _own_seed(spec.eval.seed, d), f"eval-{d.name}")
        for d in domains
    ]
    out = Path(root) / "data" / f"eval-domains-{stable_hash([relative(p, root) for p in parts], 8)}"
    if (out / "summary.json").exists():
        return out
    tables = [
        open_dataset(p).table("eval").append_column("domain", pa.array([d.name] * spec.eval.n_docs))
        for p, d in zip(parts, domains, strict=True)
    ]
    combined = pa.concat_tables(tables)
    # Row j * n_domains + i is document j of domain i: any prefix is balanced.
    order = np.arange(len(domains) * spec.eval.n_docs).reshape(len(domains), -1).T.ravel()
    ids = sorted(c for d in domains for c in d.concepts)
    write_dataset(
        out,
        open_dataset(parts[0]),
        {"eval": combined.take(order)},
        overwrite=True,
        concepts={"plan": "ids", "ids": ids},
        domains={d.name: d.concepts for d in domains},
    )
    return out


def document_counts(weights, n_docs: int) -> np.ndarray:
    """Largest-remainder rounding of ``weights * n_docs``: integers summing to ``n_docs``,
    each within 1 of its target (ties go to the earlier domain)."""
    weights = np.asarray(weights, float)
    if weights.ndim != 1 or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ConfigError(f"mixture weights must be >= 0 and sum to 1, got {weights.tolist()}")
    target = weights * n_docs
    counts = np.floor(target).astype(np.int64)
    short = n_docs - int(counts.sum())
    order = np.argsort(-(target - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def mixture_documents(
    pools: dict[str, TokenDataset], weights, n_docs: int, rng: np.random.Generator
) -> pa.Table:
    """``n_docs`` documents, ``document_counts(weights)`` of them from each pool (in pool
    order), drawn without replacement; the pool's columns plus ``domain``."""
    counts = document_counts(weights, n_docs)
    tables = []
    for (name, pool), count in zip(pools.items(), counts, strict=True):
        table = pool.table("train")
        if count > table.num_rows:
            raise DataError(
                f"domain {name!r} has {table.num_rows} documents, fewer than the {count} "
                "its share needs; regenerate its pool with more tokens"
            )
        chosen = np.sort(rng.choice(table.num_rows, size=int(count), replace=False))
        table = table.take(chosen)
        tables.append(table.append_column("domain", pa.array([name] * int(count), pa.string())))
    return pa.concat_tables(tables)


def write_training_set(
    out: Path, like: TokenDataset, table: pa.Table, order: np.ndarray | None = None, **summary
) -> Path:
    """Write ``table`` (rows in ``order``) as a data set's train split, unless ``out`` is
    already a finished data set (a relaunch reuses it)."""
    out = Path(out)
    if not (out / "summary.json").exists():
        if order is not None:
            table = table.take(np.asarray(order))
        write_dataset(out, like, {"train": table}, overwrite=True, **summary)
    return out


# ---- orders ------------------------------------------------------------------------------


def shuffled_order(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(n)


def staged_order(domain_of: np.ndarray, stages: list[str], rng: np.random.Generator) -> np.ndarray:
    """Every document of ``stages[0]`` (shuffled), then of ``stages[1]``, ..."""
    domain_of = np.asarray(domain_of)
    missing = set(domain_of.tolist()) - set(stages)
    if missing:
        raise ConfigError(f"stages {stages} leave out domain(s) {sorted(missing)}; list them all")
    return np.concatenate([rng.permutation(np.flatnonzero(domain_of == s)) for s in stages])


def scheduled_order(
    domain_of: np.ndarray, names: list[str], knots, rng: np.random.Generator
) -> np.ndarray:
    """An order following a schedule of weights over training progress.

    ``knots`` (K x n_domains, K >= 2) are the weights at progress 0, 1/(K-1), ..., 1,
    linear in between. Domain i's j-th document (of n_i, in a seeded shuffle) is placed at
    progress F_i^{-1}((j + 1/2) / n_i), F_i the normalised integral of w_i; documents are
    then sorted by progress (ties broken at random). The documents are the same whatever
    the schedule; at progress p domain i's share is proportional to
    n_i w_i(p) / mean(w_i): exactly w(p) when the schedule averages to the data's shares.
    """
    domain_of = np.asarray(domain_of)
    knots = np.asarray(knots, float)
    if knots.ndim != 2 or knots.shape[0] < 2 or knots.shape[1] != len(names):
        raise ConfigError(
            f"a schedule needs K >= 2 rows of {len(names)} weights (one per domain), "
            f"got shape {knots.shape}"
        )
    if np.any(knots < 0):
        raise ConfigError("schedule weights must be >= 0")
    # A grid containing every knot: the integral of a piecewise-linear w is exact on it.
    grid = np.linspace(0.0, 1.0, (knots.shape[0] - 1) * 256 + 1)
    progress = np.empty(len(domain_of))
    for i, name in enumerate(names):
        members = rng.permutation(np.flatnonzero(domain_of == name))
        if len(members) == 0:
            continue
        w = np.interp(grid, np.linspace(0.0, 1.0, knots.shape[0]), knots[:, i])
        cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2 * np.diff(grid))])
        if cdf[-1] <= 0:
            raise ConfigError(
                f"the schedule gives domain {name!r} weight 0 throughout, but the data holds "
                f"{len(members)} of its documents; give it weight somewhere"
            )
        quantiles = (np.arange(len(members)) + 0.5) / len(members)
        progress[members] = _inverse_cdf(grid, cdf / cdf[-1], quantiles)
    return np.lexsort((rng.random(len(domain_of)), progress))


def _inverse_cdf(grid: np.ndarray, cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The first grid point where the (nondecreasing, piecewise-linear) ``cdf`` reaches ``u``."""
    j = np.clip(np.searchsorted(cdf, u, side="left"), 1, len(grid) - 1)
    low, high = cdf[j - 1], cdf[j]
    fraction = np.where(high > low, (u - low) / np.where(high > low, high - low, 1.0), 0.0)
    return grid[j - 1] + fraction * (grid[j] - grid[j - 1])


# ---- per-domain losses -------------------------------------------------------------------


def scored_concepts(eval_data: Path, limit: int | None) -> np.ndarray:
    """Concept ids of the eval documents a run scores (the first ``limit``)."""
    concepts = open_dataset(eval_data).table("eval", ["concept"]).column(0).to_numpy()
    return concepts[:limit] if limit else concepts


def domain_weights(domains: list[DomainSpec], concepts: np.ndarray) -> dict[str, dict[str, int]]:
    """For each domain, its concepts' document counts among ``concepts`` (the scored ones)."""
    ids, counts = np.unique(concepts, return_counts=True)
    count = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    return {d.name: {str(c): count[c] for c in d.concepts if c in count} for d in domains}


def domain_losses(per_concept: dict[str, float], weights: dict[str, dict[str, int]]) -> dict:
    """Token-weighted loss of each domain from per-concept losses (equal-length documents:
    document counts are token weights); NaN for a domain with no scored document."""
    out = {}
    for name, counts in weights.items():
        total = sum(counts.values())
        out[name] = (
            sum(per_concept[c] * n for c, n in counts.items()) / total if total else float("nan")
        )
    return out


def domain_data(spec, root: Path, domains: list[DomainSpec], log) -> tuple[Path, int, dict]:
    """What a kind over domains starts from: the eval set of the domains, the number of
    documents of one pass over the trained tokens, and each domain's pool (opened)."""
    eval_data = domain_eval_set(spec, root, domains)
    n_docs = n_documents(spec)
    log(f"data: {len(domains)} domain pools of {n_docs} documents, eval set {eval_data.name}")
    pools = {k: open_dataset(p) for k, p in domain_pools(spec, root, domains, n_docs).items()}
    return eval_data, n_docs, pools
