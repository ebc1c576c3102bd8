"""The diversity coefficient and the alignment coefficient (Miranda, Lee et al. 2023).

* ``div(D)``: the mean Task2Vec distance over pairs of batches ``i < j`` of ``D``. Reported
  with its std, the paper's "+-" (``1.96 * std / sqrt(#pairs)``: overconfident, since
  pairs share batches) and an honest 95 % interval from a bootstrap over batches.
* ``align1(D1, D2) = 1 - mean_{i,j} d(e_i^{D1}, e_j^{D2})`` (bootstrap over both sets of
  batches) and ``align2(D1, D2) = 1 - d(e_{D1}, e_{D2})`` from one large batch each.
* Bounds for a probe: a repeated single token (lower) and random tokens from a different
  slice of the vocabulary in every batch (upper; see ``batches.random_token_batches`` for
  why not the paper's uniform tokens); ``normalized = (div - lower) / (upper - lower)``.

Every result says which probe, estimator and batch construction it came from: a GINC
figure means little without the noise floor (the coefficient of a 1-concept set under the
same settings) beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import stats
from scipy.spatial.distance import cdist

from divlab.data.store import TokenDataset, open_dataset
from divlab.data.text import read_documents
from divlab.errors import ConfigError, DataError
from divlab.measure.batches import (
    Batches,
    make_batches,
    random_token_batches,
    repeated_token_batches,
)
from divlab.measure.cache import EmbeddingCache
from divlab.measure.distance import distance, distance_matrix
from divlab.measure.probe import Probe
from divlab.measure.task2vec import HeadFineTune, closed_form_embedding, montecarlo_embedding
from divlab.progress import bar


@dataclass
class DiversitySettings:
    estimator: Literal["closed-form", "montecarlo"] = "closed-form"
    distance: Literal["normalized_cosine", "cosine"] = "normalized_cosine"
    n_batches: int = 20
    batch_size: int = 64
    seq_len: int = 128
    construction: Literal["blocks", "documents"] = "blocks"
    finetune_epochs: int = 0
    finetune_lr: float = 5e-5
    mc_minibatch: int = 8
    mc_samples: int = 1
    bootstrap: int = 1000
    align2_repeats: int = 1  # > 1: independent large-batch pairs, a t-interval for align2
    seed: int = 0

    def finetune(self) -> HeadFineTune:
        return HeadFineTune(epochs=self.finetune_epochs, lr=self.finetune_lr, seed=self.seed)


# ---- data in the probe's vocabulary ------------------------------------------------
@dataclass
class ProbeData:
    documents: list[np.ndarray]
    separator: int | None
    source: str


def probe_documents(data, probe: Probe, field: str = "text", split: str | None = None) -> ProbeData:
    """Documents of ``data`` as token ids the probe understands.

    ``data``: a divlab data set folder (GINC or text; its ``split``, by default train, else
    its first: ``TokenDataset.data_split``) or corpus files (JSONL, Parquet, text, HF
    datasets folder), tokenized with the probe's tokenizer where needed."""

    path = Path(data) if not isinstance(data, TokenDataset) else data.path
    if isinstance(data, TokenDataset) or (path / "summary.json").exists():
        dataset = data if isinstance(data, TokenDataset) else open_dataset(path)
        split = dataset.data_split(split)
        same_vocab = dataset.vocab_size == probe.vocab_size and (
            probe.tokenizer is None or _same_tokenizer(dataset, probe)
        )
        if same_vocab:
            return ProbeData(dataset.documents(split), dataset.eos_token_id, f"{path}:{split}")
        if dataset.summary.get("kind") != "text":
            raise DataError(
                f"{path} uses a {dataset.vocab_size}-token vocabulary and the probe "
                f"{probe.source!r} another ({probe.vocab_size}); for GINC use a probe trained "
                "on the same family (a divlab checkpoint) or a random:PRESET probe"
            )
        texts = dataset.table(split, ["text"]).column(0).to_pylist()
        return _tokenized(texts, probe, f"{path}:{split} (retokenized)")

    return _tokenized(list(read_documents(path, field=field)), probe, str(path))


def _same_tokenizer(dataset, probe: Probe) -> bool:
    data_vocab = dataset.tokenizer().get_vocab()
    return probe.tokenizer.get_vocab() == data_vocab


def _tokenized(texts: list[str], probe: Probe, source: str) -> ProbeData:
    if probe.tokenizer is None:
        raise ConfigError(f"probe {probe.source!r} has no tokenizer to read raw text with")
    if not texts:
        raise DataError(f"{source} has no documents")
    ids = probe.tokenizer(texts, add_special_tokens=False)["input_ids"]
    documents = [np.asarray(i, dtype=np.int64) for i in ids]
    return ProbeData(documents, probe.tokenizer.eos_token_id, source)


# ---- embeddings and the coefficients -----------------------------------------------
def embed(
    probe: Probe,
    batches: Batches,
    settings: DiversitySettings,
    cache: EmbeddingCache | None = None,
    progress: str | bool | None = None,
) -> list[np.ndarray]:
    """One Task2Vec embedding per batch (read from / written to ``cache`` if given);
    ``progress``: a label, to show a progress bar over the batches (on stderr)."""
    out = []
    for i in bar(range(len(batches)), progress):
        key = None
        if cache is not None:
            key = cache.key(probe, settings, batches.input_ids[i], batches.attention_mask[i], i)
            hit = cache.get(key)
            if hit is not None:
                out.append(hit)
                continue
        out.append(_embed_one(probe, batches, settings, i))
        if cache is not None:
            cache.put(key, out[-1])
    return out


def _embed_one(probe: Probe, batches: Batches, settings: DiversitySettings, i: int) -> np.ndarray:

    ids = torch.from_numpy(batches.input_ids[i]).to(probe.device)
    mask = torch.from_numpy(batches.attention_mask[i]).to(probe.device)
    if settings.estimator == "closed-form":
        return closed_form_embedding(probe.model, ids, mask, settings.finetune())
    if settings.estimator == "montecarlo":
        return montecarlo_embedding(
            probe.model,
            ids,
            mask,
            finetune=settings.finetune(),
            minibatch=settings.mc_minibatch,
            samples=settings.mc_samples,
            seed=settings.seed + i,
        )
    raise ConfigError(
        f"unknown estimator {settings.estimator!r}; use 'closed-form' or 'montecarlo'"
    )


def bootstrap_mean_pairwise(matrix: np.ndarray, rounds: int, seed: int) -> tuple[float, float]:
    """95 % percentile interval of the mean off-diagonal distance, resampling batches."""
    n = len(matrix)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(rounds):
        index = rng.integers(0, n, n)
        sub = matrix[np.ix_(index, index)]
        distinct = index[:, None] != index[None, :]
        upper = np.triu(distinct, k=1)
        if upper.any():
            means.append(sub[upper].mean())
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize_pairs(matrix: np.ndarray, rounds: int, seed: int) -> dict:
    pairs = matrix[np.triu_indices(len(matrix), k=1)]
    low, high = bootstrap_mean_pairwise(matrix, rounds, seed)
    return {
        "diversity": float(pairs.mean()),
        "std": float(pairs.std()),
        "paper_ci95": float(1.96 * pairs.std() / np.sqrt(len(pairs))),
        "ci95": [low, high],
        "n_pairs": len(pairs),
    }


def diversity_coefficient(
    data,
    probe: Probe,
    settings: DiversitySettings = DiversitySettings(),
    cache: EmbeddingCache | None = None,
    progress: bool = False,
) -> dict:
    """The diversity coefficient of ``data`` under ``probe`` (see the module docstring);
    ``progress``: a bar over the batches, on stderr."""
    prepared = data if isinstance(data, ProbeData) else probe_documents(data, probe)
    batches = make_batches(
        prepared.documents,
        settings.n_batches,
        settings.batch_size,
        settings.seq_len,
        settings.construction,
        separator=prepared.separator,
        seed=settings.seed,
    )
    return diversity_of_batches(
        batches, probe, settings, prepared.source, cache, "batches" if progress else None
    )


def diversity_of_batches(
    batches: Batches,
    probe: Probe,
    settings: DiversitySettings,
    source: str = "",
    cache: EmbeddingCache | None = None,
    progress: str | bool | None = None,
) -> dict:
    embeddings = embed(probe, batches, settings, cache, progress)
    matrix = distance_matrix(embeddings, kind=settings.distance)
    return {
        **summarize_pairs(matrix, settings.bootstrap, settings.seed),
        "data": source,
        "probe": probe.source,
        "settings": asdict(settings),
        "batches": batches.describe(),
        "distance_matrix": matrix.tolist(),
    }


def alignment(
    data_a,
    data_b,
    probe: Probe,
    settings: DiversitySettings = DiversitySettings(),
    cache: EmbeddingCache | None = None,
    progress: bool = False,
) -> dict:
    """align1 (mean cross-distance, bootstrap CI over both sets of batches), align2
    (one large batch each; with ``settings.align2_repeats = r > 1``, the mean over r
    independent pairs of large batches with a t-interval over them) and the energy
    distance of the two sets of batch embeddings (``_energy``: lower = closer, 0 for the
    same distribution; corrects align1 for each set's own spread), with the same
    bootstrap. ``progress``: bars over the batches, on stderr."""
    if settings.align2_repeats < 1:
        raise ConfigError(f"align2_repeats must be >= 1, got {settings.align2_repeats}")
    prepared = [
        d if isinstance(d, ProbeData) else probe_documents(d, probe) for d in (data_a, data_b)
    ]
    batches = [
        make_batches(p.documents, settings.n_batches, settings.batch_size, settings.seq_len,
                     settings.construction, p.separator, settings.seed + k)
        for k, p in enumerate(prepared)
    ]  # fmt: skip
    embeddings = [
        embed(probe, b, settings, cache, f"batches of {name}" if progress else None)
        for b, name in zip(batches, ("data 1", "data 2"), strict=True)
    ]
    cross = distance_matrix(embeddings[0], embeddings[1], kind=settings.distance)
    # the energy distance: Euclidean on unit-normalised embeddings (see _energy)
    units = [np.stack(e) / np.linalg.norm(np.stack(e), axis=1, keepdims=True) for e in embeddings]
    e_cross = cdist(units[0], units[1])
    e_within = [cdist(u, u) for u in units]
    rng = np.random.default_rng(settings.seed)
    n_a, n_b = cross.shape
    means, energies = [], []
    for _ in range(settings.bootstrap):
        rows, cols = rng.integers(0, n_a, n_a), rng.integers(0, n_b, n_b)
        means.append(cross[np.ix_(rows, cols)].mean())
        energies.append(_energy(e_cross[np.ix_(rows, cols)], *e_within, rows, cols))
    energy = _energy(e_cross, *e_within, np.arange(n_a), np.arange(n_b))
    align2 = []
    for repeat in bar(
        range(settings.align2_repeats), "align2 (large batches)" if progress else None
    ):
        large = [
            _one_large_batch(p, settings, settings.seed + 10 + k + 100 * repeat)
            for k, p in enumerate(prepared)
        ]
        pair = [embed(probe, b, settings, cache)[0] for b in large]
        align2.append(1 - distance(*pair, kind=settings.distance))
    return {
        "align1": float(1 - cross.mean()),
        "align1_ci95": [
            float(1 - np.percentile(means, 97.5)),
            float(1 - np.percentile(means, 2.5)),
        ],
        "align2": float(np.mean(align2)),
        "align2_ci95": _t_interval(align2),
        "energy_distance": energy,
        "energy_distance_ci95": [
            float(np.percentile(energies, 2.5)),
            float(np.percentile(energies, 97.5)),
        ],
        "data": [p.source for p in prepared],
        "probe": probe.source,
        "settings": asdict(settings),
        "batches": batches[0].describe(),
        "cross_distance_matrix": cross.tolist(),
    }


def _energy(cross, within_a, within_b, rows, cols) -> float:
    """Energy distance ``2 E d(A, B) - E d(A, A') - E d(B, B')`` over batch embeddings
    (Szekely & Rizzo): the cross distance less each set's own spread, so a more diverse
    set is not scored as less aligned for its diversity alone (align1 = 1 - E d(A, B) is
    bounded by 1 minus the set's own batch-to-batch distance). ``alignment`` gives it the
    Euclidean distance of unit-normalised embeddings, a metric of negative type: the
    population value is >= 0 and 0 only for equal distributions. With the cosine distance
    (half the SQUARED Euclidean of unit vectors) it would only compare mean directions and
    could be negative. Within-set means are over pairs of distinct draws (a bootstrap's
    repeated batch is not its own pair); the estimate can dip below 0 by sampling noise."""

    def spread(matrix, index):
        sub = matrix[np.ix_(index, index)]
        distinct = index[:, None] != index[None, :]
        return float(sub[distinct].mean()) if distinct.any() else 0.0

    return float(2 * cross.mean() - spread(within_a, rows) - spread(within_b, cols))


def _t_interval(values: list[float]) -> list[float] | None:
    """95 % t-interval of the mean of independent repeats (None for a single one)."""
    if len(values) < 2:
        return None

    mean, sem = float(np.mean(values)), float(stats.sem(values))
    if sem == 0:
        return [mean, mean]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    return [float(low), float(high)]


def _one_large_batch(prepared: ProbeData, settings: DiversitySettings, seed: int) -> Batches:
    """A single batch as large as the whole diversity sample (n_batches x batch_size)."""
    big = make_batches(prepared.documents, 2, settings.batch_size * settings.n_batches // 2,
                       settings.seq_len, settings.construction, prepared.separator,
                       seed=seed)  # fmt: skip
    return Batches(
        big.input_ids.reshape(1, -1, big.input_ids.shape[-1]),
        big.attention_mask.reshape(1, -1, big.attention_mask.shape[-1]),
        big.construction,
        big.documents_per_batch * 2,
    )


def bounds(
    probe: Probe,
    symbols: np.ndarray,
    settings: DiversitySettings = DiversitySettings(),
    progress: bool = False,
):
    """Lower (one repeated token) and upper (random tokens, disjoint across batches)
    diversity under ``settings``; also the paper's uniform-random-tokens value.
    ``progress``: bars over the batches, on stderr."""
    shape = (settings.n_batches, settings.batch_size, settings.seq_len)
    symbols = np.asarray(symbols)

    def value(batches: Batches, name: str) -> float:
        label = name if progress else None
        return diversity_of_batches(batches, probe, settings, progress=label)["diversity"]

    return {
        "lower": value(repeated_token_batches(int(symbols[0]), *shape), "lower bound"),
        "upper": value(random_token_batches(symbols, *shape, seed=settings.seed), "upper bound"),
        "uniform_random": value(
            random_token_batches(symbols, *shape, seed=settings.seed, disjoint=False),
            "uniform random tokens",
        ),
    }


def normalized_diversity(value: float, lower: float, upper: float) -> float:
    if upper <= lower:
        raise DataError(f"upper bound {upper} is not above the lower bound {lower}")
    return (value - lower) / (upper - lower)
