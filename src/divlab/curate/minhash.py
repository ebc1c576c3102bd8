"""MinHash-LSH near-duplicate detection (BRIEF section 6), for text and for token data.

* Shingles: character n-grams of the normalised text (lowercase, punctuation stripped,
  whitespace collapsed; SlimPajama's recipe, n = 13), word n-grams (datatrove, n = 5), or
  token n-grams of GINC token documents. Each shingle is hashed to 64 bits with a
  vectorised polynomial hash over its units (UTF-8 bytes, word hashes from xxhash, or
  token ids) and a splitmix64 finaliser — no Python call per shingle. Character n-grams
  are n-grams of the UTF-8 bytes: the same as characters for ASCII text.
* Signatures: one-permutation MinHash with densification (``MinHasher``): one hash per
  shingle instead of ``num_perm``; the fraction of equal entries of two signatures
  estimates the Jaccard similarity of the shingle sets (standard error about
  ``sqrt(J (1 - J) / num_perm)``, checked in the tests). Hand-written (numpy, no
  per-shingle Python) because it is the product's hot loop and measurably faster than
  datasketch's ``update_batch``, which hashes every shingle ``num_perm`` times.
* LSH: ``bands x rows`` (datasketch's optimiser for a threshold, or given); in each band the
  documents are sorted by their band key and consecutive equal keys are linked, so the
  edge list is linear in the number of documents (never a quadratic self-join); clusters
  are the connected components (scipy). An optional exact-Jaccard check drops candidate
  edges below the threshold.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np
import xxhash
from datasketch.lsh import _optimal_param
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from divlab.errors import ConfigError

_POLY = np.uint64(0x100000001B3)  # the FNV-1a 64-bit prime, as the polynomial base


@dataclass(frozen=True)
class MinHashSettings:
    shingle: Literal["char", "word", "token"] = "char"
    n: int = 13
    num_perm: int = 128
    threshold: float = 0.8
    bands: int | None = None  # None: datasketch's optimiser for the threshold
    rows: int | None = None
    lowercase: bool = True
    strip_punctuation: bool = True
    seed: int = 1

    def band_shape(self) -> tuple[int, int]:
        if (self.bands is None) != (self.rows is None):
            raise ConfigError("give both bands and rows, or neither (chosen for the threshold)")
        if self.bands is not None:
            if self.bands * self.rows > self.num_perm:
                raise ConfigError(
                    f"bands x rows = {self.bands * self.rows} exceeds num_perm={self.num_perm}"
                )
            return self.bands, self.rows
        return optimal_bands(self.threshold, self.num_perm)


DEFAULT_N = {"char": 13, "word": 5, "token": 3}  # SlimPajama, datatrove, GINC tokens


def settings_for(
    is_text: bool,
    shingle: str | None = None,
    n: int | None = None,
    num_perm: int = 128,
    threshold: float = 0.8,
) -> MinHashSettings:
    """Settings with the default shingle of the data's kind (text: char, tokens: token)
    and that shingle's default size."""
    kind = shingle or ("char" if is_text else "token")
    if kind not in DEFAULT_N:
        raise ConfigError(f"shingle must be char, word or token, not {kind!r}")
    return MinHashSettings(kind, n or DEFAULT_N[kind], num_perm, threshold)


PRESETS = {
    "slimpajama": MinHashSettings("char", 13, 128, 0.8, 9, 13),
    "datatrove": MinHashSettings("word", 5, 112, 0.8, 14, 8),
}


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the false positive + false negative area (datasketch)."""

    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    return tuple(int(v) for v in _optimal_param(threshold, num_perm, 0.5, 0.5))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _ngram_hashes(units: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every window of ``n`` consecutive units (all of them if shorter)."""
    units = _splitmix64(units.astype(np.uint64))
    if len(units) == 0:
        return units
    n = min(n, len(units))
    windows = np.lib.stride_tricks.sliding_window_view(units, n)
    with np.errstate(over="ignore"):
        h = np.zeros(len(windows), dtype=np.uint64)
        for j in range(n):  # n is small (<= ~16): a loop over positions, vectorised in docs
            h = h * _POLY + windows[:, j]
    return _splitmix64(h)


_PUNCTUATION = re.compile(r"[^\w\s]")


# ASCII punctuation and symbols (what [^\w\s] removes from ASCII text), for str.translate
_ASCII_DROP = {
    c: None for c in range(128) if not (chr(c).isalnum() or chr(c) == "_" or chr(c).isspace())
}


def normalise(text: str, lowercase: bool = True, strip_punctuation: bool = True) -> str:
    """NFC, lower-case, punctuation and symbols removed, whitespace collapsed (SlimPajama).
    ASCII text takes a translate-table fast path (same result as the regex)."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = text.translate(_ASCII_DROP) if text.isascii() else _PUNCTUATION.sub("", text)
    return " ".join(text.split())


def shingle_hashes(document, settings: MinHashSettings, distinct: bool = True) -> np.ndarray:
    """The 64-bit shingle hashes of one document (text, or token ids); ``distinct=False``
    skips the sort that removes repeats (a signature's minima do not need it)."""
    finish = np.unique if distinct else np.asarray
    if settings.n < 1:
        raise ConfigError(f"shingle size n must be >= 1, got {settings.n}")
    if settings.shingle == "token":
        if isinstance(document, str):
            raise ConfigError("token shingles need token documents, not text")
        return finish(_ngram_hashes(np.asarray(document), settings.n))
    if not isinstance(document, str):
        raise ConfigError(f"{settings.shingle} shingles need text documents")
    text = normalise(document, settings.lowercase, settings.strip_punctuation)
    if settings.shingle == "char":
        units = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    elif settings.shingle == "word":
        units = np.fromiter((xxhash.xxh3_64_intdigest(w.encode()) for w in text.split()), np.uint64)
    else:
        raise ConfigError(f"unknown shingle kind {settings.shingle!r}; use char, word or token")
    return finish(_ngram_hashes(units, settings.n))


class MinHasher:
    """One-permutation MinHash (Li, Owen & Zhang 2012) with rotation densification
    (Shrivastava & Li 2014): each shingle hash is mixed once with the seed; its low bits
    pick one of ``num_perm`` bins and its high 32 bits are its value; a bin keeps its
    minimum. For two documents, a bin's values agree with probability equal to the Jaccard
    similarity of their shingle sets (given the bin is not empty for both), like
    ``num_perm`` independent min-wise hashes, at the cost of one hash per shingle instead
    of ``num_perm``. Empty bins (documents with few shingles) copy the next non-empty bin
    to their right, shifted by the distance, so equal sets still give equal signatures."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        if num_perm < 1:
            raise ConfigError(f"num_perm must be >= 1, got {num_perm}")
        self.num_perm = num_perm
        self.salt = _splitmix64(np.array([seed], dtype=np.uint64))[0]

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        empty_value = np.iinfo(np.uint32).max
        sig = np.full(self.num_perm, empty_value, dtype=np.uint32)
        if len(hashes) == 0:  # an empty document matches nothing but empty documents
            return sig
        mixed = _splitmix64(hashes ^ self.salt)
        bins = (mixed % np.uint64(self.num_perm)).astype(np.intp)
        np.minimum.at(sig, bins, (mixed >> np.uint64(32)).astype(np.uint32))
        empty = sig == empty_value
        if empty.any():
            filled = np.flatnonzero(~empty)
            position = np.arange(self.num_perm)
            nxt = np.searchsorted(filled, position) % len(filled)  # next non-empty bin
            distance = (filled[nxt] - position) % self.num_perm
            donor = sig[filled[nxt]].astype(np.uint64)
            shifted = (donor + distance.astype(np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(
                0xFFFFFFFE
            )
            sig = np.where(empty, shifted, sig).astype(np.uint32)
        return sig


def signatures(documents, settings: MinHashSettings) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures."""
    hasher = MinHasher(settings.num_perm, settings.seed)
    out = np.empty((len(documents), settings.num_perm), dtype=np.uint32)
    for i, document in enumerate(documents):
        out[i] = hasher.signature(shingle_hashes(document, settings, distinct=False))
    return out


def keep_first(cluster: np.ndarray) -> np.ndarray:
    """Keep the first document of every cluster (bool per document)."""
    keep = np.zeros(len(cluster), dtype=bool)
    keep[np.unique(cluster, return_index=True)[1]] = True
    return keep


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b, assume_unique=True)) / union if union else 1.0


def candidate_edges(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(m, 2) document pairs sharing a band: per band, sort by band key and link
    consecutive equal keys (at most n - 1 edges per band)."""
    n = len(sigs)
    edges = []
    for band in range(bands):
        block = np.ascontiguousarray(sigs[:, band * rows : (band + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        order = np.argsort(keys, kind="stable")
        same = keys[order[1:]] == keys[order[:-1]]
        edges.append(np.stack([order[:-1][same], order[1:][same]], axis=1))
    if not edges or n < 2:
        return np.empty((0, 2), dtype=np.int64)
    all_edges = np.concatenate(edges)
    return np.unique(np.sort(all_edges, axis=1), axis=0) if len(all_edges) else all_edges


def clusters(n_docs: int, edges: np.ndarray) -> np.ndarray:
    """Connected components of the duplicate graph: a cluster id per document."""

    graph = coo_matrix(
        (np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n_docs, n_docs)
    )
    return connected_components(graph, directed=False)[1]


@dataclass
class NearDuplicates:
    cluster: np.ndarray  # a cluster id per document
    keep: np.ndarray  # bool per document
    edges: np.ndarray  # the linked pairs
    candidates: int  # pairs before the exact-Jaccard check


def near_duplicates(
    documents,
    settings: MinHashSettings = MinHashSettings(),
    verify: bool = False,
    keep: Literal["first", "longest"] = "first",
) -> NearDuplicates:
    """Cluster near-duplicate documents and choose one to keep per cluster."""
    hashes = [shingle_hashes(d, settings, distinct=verify) for d in documents]
    hasher = MinHasher(settings.num_perm, settings.seed)
    sigs = np.stack([hasher.signature(h) for h in hashes]) if hashes else np.empty((0, 0))
    bands, rows = settings.band_shape()
    edges = candidate_edges(sigs, bands, rows)
    candidates = len(edges)
    if verify and len(edges):
        similar = [exact_jaccard(hashes[a], hashes[b]) >= settings.threshold for a, b in edges]
        edges = edges[np.asarray(similar, dtype=bool)]
    cluster = clusters(len(documents), edges)
    if keep == "first":
        score = -np.arange(len(documents))
    elif keep == "longest":
        score = np.array([len(d) for d in documents]) * len(documents) - np.arange(len(documents))
    else:
        raise ConfigError(f"unknown keep policy {keep!r}; use first or longest")
    order = np.lexsort((-score, cluster))  # by cluster, best first
    kept = np.zeros(len(documents), dtype=bool)
    first_of_cluster = np.r_[True, cluster[order][1:] != cluster[order][:-1]]
    kept[order[first_of_cluster]] = True
    return NearDuplicates(cluster, kept, edges, candidates)
