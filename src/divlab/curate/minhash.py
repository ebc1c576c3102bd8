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

from divlab.errors import ConfigError
from divlab.progress import counter

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
    # imported here (as scipy in `clusters`): a signing worker needs neither (0.4 s each)
    from datasketch.lsh import _optimal_param

    return tuple(int(v) for v in _optimal_param(threshold, num_perm, 0.5, 0.5))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise, into a new array (in place after one copy:
    no temporary per step)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _whole_hash(units: np.ndarray) -> np.ndarray:
    """The one shingle of a document shorter than ``n``: the hash of all its units (the
    same polynomial as a full window, over fewer units)."""
    with np.errstate(over="ignore"):
        h = np.zeros(1, dtype=np.uint64)
        for unit in _splitmix64(units):
            h = h * _POLY + unit
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
    return finish(_window_hashes([_units(document, settings)], settings.n)[1])


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
        """The signature of one document's shingle hashes (``signatures`` of one)."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        return self.signatures((np.zeros(len(hashes), dtype=np.int64), hashes, 1))[0]

    def signatures(self, window_hashes: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
        """Signatures of many documents at once, from (document of each hash, hashes,
        number of documents); a document without hashes keeps the empty value in every
        bin, so it matches nothing but empty documents."""
        doc_of, hashes, n_docs = window_hashes
        empty_value = np.iinfo(np.uint32).max
        sig = np.full(n_docs * self.num_perm, empty_value, dtype=np.uint32)
        mixed = _splitmix64(hashes ^ self.salt)
        slot = doc_of * self.num_perm + (mixed % np.uint64(self.num_perm)).astype(np.int64)
        np.minimum.at(sig, slot, (mixed >> np.uint64(32)).astype(np.uint32))
        sig = sig.reshape(n_docs, self.num_perm)
        empty = sig == empty_value
        rows = np.flatnonzero(empty.any(axis=1) & ~empty.all(axis=1))  # all empty: no shingles
        if len(rows):
            block, holes = sig[rows], empty[rows]
            position = np.arange(self.num_perm)
            # the next non-empty bin at or after each bin, wrapping round: a reversed
            # running minimum over the row written twice
            twice = np.where(np.tile(~holes, 2), np.arange(2 * self.num_perm), 2 * self.num_perm)
            following = np.minimum.accumulate(twice[:, ::-1], axis=1)[:, ::-1][:, : self.num_perm]
            donor = np.take_along_axis(block, following % self.num_perm, axis=1).astype(np.uint64)
            distance = (following - position).astype(np.uint64)
            shifted = (donor + distance * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFE)
            sig[rows] = np.where(holes, shifted, block).astype(np.uint32)
        return sig


def _units(document, settings: MinHashSettings) -> np.ndarray:
    """The units a document's shingles are made of: UTF-8 bytes of the normalised text
    (char), xxhash-64 of its words (word) or its token ids (token)."""
    if settings.n < 1:
        raise ConfigError(f"shingle size n must be >= 1, got {settings.n}")
    if settings.shingle == "token":
        if isinstance(document, str):
            raise ConfigError("token shingles need token documents, not text")
        return np.asarray(document)
    if not isinstance(document, str):
        raise ConfigError(f"{settings.shingle} shingles need text documents")
    text = normalise(document, settings.lowercase, settings.strip_punctuation)
    if settings.shingle == "char":
        # surrogatepass: a lone surrogate (valid in JSON, not in UTF-8) survives when
        # punctuation is kept; the default normalisation removes it
        return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    if settings.shingle == "word":
        return np.fromiter((xxhash.xxh3_64_intdigest(w.encode()) for w in text.split()), np.uint64)
    raise ConfigError(f"unknown shingle kind {settings.shingle!r}; use char, word or token")


PROGRESS_STEP = 2_000  # documents signed between two updates of the progress counter
BATCH_UNITS = 1 << 20  # units hashed together: ~50 MB of temporaries, whatever the corpus


def signatures(documents, settings: MinHashSettings) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures, equal to ``MinHasher.signature`` of
    each document's shingles, computed for many documents at once: their units are
    concatenated, every window of ``n`` is hashed in one vectorised pass and windows that
    cross a document boundary are dropped, so the cost per document is its normalisation
    and not a dozen numpy calls (about 3x faster on 2 KB documents; bench/)."""
    hasher = MinHasher(settings.num_perm, settings.seed)
    out = np.empty((len(documents), settings.num_perm), dtype=np.uint32)
    units = [_units(document, settings) for document in documents]
    start = 0
    while start < len(units):
        stop, size = start, 0
        while stop < len(units) and (stop == start or size + len(units[stop]) <= BATCH_UNITS):
            size += len(units[stop])
            stop += 1
        out[start:stop] = hasher.signatures(_window_hashes(units[start:stop], settings.n))
        start = stop
    return out


def _window_hashes(units: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(document of each hash, the hashes, number of documents): the 64-bit hash of every
    window of ``n`` consecutive units of every document (of the whole document if it is
    shorter), computed over the documents' concatenation; ``n`` is small (<= ~16), so the
    polynomial loops over window positions, vectorised over all windows."""
    lengths = np.array([len(u) for u in units], dtype=np.int64)
    if not len(units) or not lengths.sum():
        return np.empty(0, np.int64), np.empty(0, np.uint64), len(units)
    flat = _splitmix64(np.concatenate([u.astype(np.uint64, copy=False) for u in units]))
    ends = np.cumsum(lengths)
    doc = np.repeat(np.arange(len(units)), lengths)
    if len(flat) >= n:
        with np.errstate(over="ignore"):
            h = np.zeros(len(flat) - n + 1, dtype=np.uint64)
            for j in range(n):  # Horner, in place: no temporary per position
                h *= _POLY
                h += flat[j : j + len(h)]
        # a window starting in the last n - 1 units of a document crosses its end
        valid = np.ones(len(h), dtype=bool)
        crossing = (ends[:, None] - np.arange(1, n)).ravel()
        valid[crossing[(crossing >= 0) & (crossing < len(h))]] = False
        doc_of, hashes = doc[: len(h)][valid], _splitmix64(h[valid])
    else:
        doc_of, hashes = np.empty(0, np.int64), np.empty(0, np.uint64)
    short = np.flatnonzero((lengths > 0) & (lengths < n))  # one window: the whole document
    if len(short):
        extra = np.concatenate([_whole_hash(units[i]) for i in short])
        doc_of, hashes = np.concatenate([doc_of, short]), np.concatenate([hashes, extra])
    return doc_of, hashes, len(units)


def keep_per_cluster(cluster: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """One document kept per cluster (bool per document): the first in reading order, or
    with ``lengths`` the longest (ties to the first). The rule depends only on positions
    and lengths, so the same documents give the same kept set however they were split
    into shards or workers."""
    position = np.arange(len(cluster))
    keys = (position, cluster) if lengths is None else (position, -np.asarray(lengths), cluster)
    order = np.lexsort(keys)  # by cluster, best first
    first = np.r_[True, cluster[order][1:] != cluster[order][:-1]] if len(order) else []
    kept = np.zeros(len(cluster), dtype=bool)
    kept[order[first]] = True
    return kept


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b, assume_unique=True)) / union if union else 1.0


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n_docs) uint64: each band's ``rows`` signature values hashed to one key
    (a polynomial over them, then splitmix64). Two documents share a band when their keys
    are equal; distinct bands collide with probability about 2^-64 per pair (for 10^7
    documents, ~3e-6 spurious links in all). Keys are 8 bytes per band whatever ``rows``,
    so streaming curation spills these, not the signatures."""
    keys = np.empty((bands, len(sigs)), dtype=np.uint64)
    for band in range(bands):
        h = np.zeros(len(sigs), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for column in range(band * rows, (band + 1) * rows):
                h *= _POLY
                h += sigs[:, column]
        keys[band] = _splitmix64(h)
    return keys


def linked_pairs(key: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """(m, 2) pairs of documents with equal ``key``: sorted by key, consecutive equal keys
    linked (at most n - 1 pairs, never a quadratic self-join); ``index`` names the
    documents (default: positions)."""
    index = np.arange(len(key)) if index is None else index
    order = np.argsort(key, kind="stable")
    same = key[order[1:]] == key[order[:-1]]
    return np.stack([index[order[:-1][same]], index[order[1:][same]]], axis=1)


def unique_pairs(edges: list[np.ndarray]) -> np.ndarray:
    """The distinct pairs (smaller index first) of a list of (m, 2) arrays."""
    if not edges or not sum(len(e) for e in edges):
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(edges), axis=1).astype(np.int64)
    return np.unique(pairs, axis=0)


def candidate_edges(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(m, 2) document pairs sharing a band (``band_keys`` + ``linked_pairs`` per band)."""
    if len(sigs) < 2:
        return np.empty((0, 2), dtype=np.int64)
    return unique_pairs([linked_pairs(key) for key in band_keys(sigs, bands, rows)])


def clusters(n_docs: int, edges: np.ndarray) -> np.ndarray:
    """Connected components of the duplicate graph: a cluster id per document."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

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
    progress: bool = False,
) -> NearDuplicates:
    """Cluster near-duplicate documents and choose one to keep per cluster (``progress``:
    a docs/s counter while signing, the slow part)."""
    parts = []
    with counter("signing" if progress else None) as advance:
        for start in range(0, len(documents), PROGRESS_STEP):
            parts.append(signatures(documents[start : start + PROGRESS_STEP], settings))
            advance(len(parts[-1]))
    sigs = np.concatenate(parts) if parts else signatures([], settings)
    bands, rows = settings.band_shape()
    edges = candidate_edges(sigs, bands, rows)
    candidates = len(edges)
    if verify and len(edges):
        edges = verified(edges, {i: documents[i] for i in np.unique(edges)}, settings)
    cluster = clusters(len(documents), edges)
    if keep not in ("first", "longest"):
        raise ConfigError(f"unknown keep policy {keep!r}; use first or longest")
    lengths = [len(d) for d in documents] if keep == "longest" else None
    return NearDuplicates(cluster, keep_per_cluster(cluster, lengths), edges, candidates)


def verified(edges: np.ndarray, documents: dict, settings: MinHashSettings) -> np.ndarray:
    """The ``edges`` whose documents' shingle sets have exact Jaccard >= the threshold
    (``documents``: index -> document, for every index in ``edges``)."""
    hashes = {i: shingle_hashes(d, settings) for i, d in documents.items()}
    similar = [exact_jaccard(hashes[a], hashes[b]) >= settings.threshold for a, b in edges]
    return edges[np.asarray(similar, dtype=bool)]
