"""How batches are built decides what the diversity coefficient sees (BRIEF section 4).

The coefficient is a mean distance BETWEEN batches: sampling noise within a batch sets a
floor (small batches make every data set look diverse), and if every batch already mixes
many concepts, batches look alike however many concepts the data set has. So the
construction is explicit and reported:

* ``blocks`` (the reference's GINC setting): documents are joined with ``<eos>`` in file
  order and cut into ``seq_len`` blocks; a batch is ``batch_size`` CONSECUTIVE blocks
  (512 x 128 blocks of 10,240-token documents span about 6 documents).
* ``documents``: each sequence is the first ``seq_len`` tokens of a different document
  (documents shorter than that are skipped); a batch draws ``batch_size`` documents.

Batches are drawn without repetition (no block or document is used twice), seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from divlab import seeds
from divlab.errors import ConfigError, DataError

Construction = Literal["blocks", "documents"]


@dataclass
class Batches:
    """``n`` batches of ``batch_size`` sequences of token ids, with an attention mask."""

    input_ids: np.ndarray  # (n, batch_size, seq_len) int64
    attention_mask: np.ndarray  # (n, batch_size, seq_len) int64
    construction: str
    documents_per_batch: float  # mean number of distinct documents a batch touches

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def tokens_per_batch(self) -> float:
        return float(self.attention_mask.sum(axis=(1, 2)).mean())

    def describe(self) -> dict:
        return {
            "construction": self.construction,
            "n_batches": len(self),
            "batch_size": int(self.input_ids.shape[1]),
            "seq_len": int(self.input_ids.shape[2]),
            "tokens_per_batch": self.tokens_per_batch,
            "documents_per_batch": self.documents_per_batch,
        }


def make_batches(
    documents: list[np.ndarray],
    n_batches: int,
    batch_size: int,
    seq_len: int,
    construction: Construction = "blocks",
    separator: int | None = None,
    seed: int = 0,
) -> Batches:
    """Draw ``n_batches`` disjoint batches from ``documents`` (see the module docstring)."""
    if n_batches < 2:
        raise ConfigError(f"diversity needs at least 2 batches (got n_batches={n_batches})")
    if batch_size < 1 or seq_len < 2:
        raise ConfigError("batch_size must be >= 1 and seq_len >= 2")
    documents = [np.asarray(d, dtype=np.int64) for d in documents if len(d) > 0]
    if not documents:
        raise DataError("the data set has no (non-empty) documents")
    rng = seeds.rng(seed, 0xBA7C)
    if construction == "blocks":
        return _blocks(documents, n_batches, batch_size, seq_len, separator, rng)
    if construction == "documents":
        return _documents(documents, n_batches, batch_size, seq_len, rng)
    raise ConfigError(f"unknown batch construction {construction!r}; use 'blocks' or 'documents'")


def size_problem(
    n_docs: int, doc_length: int, n_batches: int, batch_size: int, seq_len: int, construction: str
) -> str | None:
    """Why ``n_docs`` documents of ``doc_length`` tokens cannot give ``n_batches`` batches
    of ``batch_size`` x ``seq_len`` under ``construction`` (None if they can): the check a
    spec makes before any data exists. Separators between documents are not counted, so
    the check never passes a data set that ``make_batches`` would refuse."""
    if construction == "documents":
        if doc_length < seq_len:
            return f"documents of {doc_length} tokens are shorter than seq_len={seq_len}"
        if n_docs < n_batches * batch_size:
            return (
                f"{n_docs} documents are fewer than n_batches x batch_size = "
                f"{n_batches * batch_size} (one document per sequence)"
            )
        return None
    slots = n_docs * doc_length // (batch_size * seq_len)
    if slots < n_batches:
        return (
            f"{n_docs} documents of {doc_length} tokens make room for {slots} batches of "
            f"{batch_size} x {seq_len} tokens, fewer than n_batches={n_batches}"
        )
    return None


def lengths_problem(
    lengths, n_batches: int, batch_size: int, seq_len: int, construction: str
) -> str | None:
    """``size_problem`` for documents of the given token ``lengths`` (a data set that
    exists): why ``make_batches`` would refuse them, or None. Separators are not counted."""
    lengths = np.asarray(lengths)
    if construction == "documents":
        long_enough = int((lengths >= seq_len).sum())
        if long_enough < n_batches * batch_size:
            return (
                f"{long_enough} of {len(lengths)} documents have at least seq_len={seq_len} "
                f"tokens, fewer than n_batches x batch_size = {n_batches * batch_size}"
            )
        return None
    slots = int(lengths.sum()) // (batch_size * seq_len)
    if slots < n_batches:
        return (
            f"{int(lengths.sum()):,} tokens make room for {slots} batches of {batch_size} x "
            f"{seq_len} tokens, fewer than n_batches={n_batches}"
        )
    return None


def _blocks(documents, n_batches, batch_size, seq_len, separator, rng) -> Batches:
    pieces, owners = [], []
    for index, doc in enumerate(documents):
        piece = doc if separator is None else np.append(doc, separator)
        pieces.append(piece)
        owners.append(np.full(len(piece), index))
    stream, owner = np.concatenate(pieces), np.concatenate(owners)
    per_batch = batch_size * seq_len
    slots = len(stream) // per_batch
    if slots < n_batches:
        raise DataError(
            f"the data has {len(stream):,} tokens: room for {slots} batches of {batch_size} x "
            f"{seq_len} consecutive tokens, fewer than the {n_batches} asked for; use fewer or "
            "smaller batches, or more data"
        )
    chosen = np.sort(rng.choice(slots, size=n_batches, replace=False))
    starts = chosen * per_batch
    ids = np.stack([stream[s : s + per_batch] for s in starts]).reshape(
        n_batches, batch_size, seq_len
    )
    docs = np.mean([len(np.unique(owner[s : s + per_batch])) for s in starts])
    return Batches(ids, np.ones_like(ids), "blocks", float(docs))


def _documents(documents, n_batches, batch_size, seq_len, rng) -> Batches:
    """Sequences of exactly ``seq_len`` tokens, each the start of its own document."""
    long_enough = [d for d in documents if len(d) >= seq_len]
    needed = n_batches * batch_size
    if len(long_enough) < needed:
        raise DataError(
            f"{len(long_enough)} of {len(documents)} documents have at least seq_len={seq_len} "
            f"tokens, fewer than n_batches x batch_size = {needed}; lower seq_len or the "
            "number of batches, or use construction='blocks' (documents joined)"
        )
    chosen = rng.choice(len(long_enough), size=needed, replace=False)
    ids = np.stack([long_enough[i][:seq_len] for i in chosen])
    shape = (n_batches, batch_size, seq_len)
    return Batches(
        ids.reshape(shape), np.ones(shape, dtype=np.int64), "documents", float(batch_size)
    )


def random_token_batches(
    vocab: np.ndarray,
    n_batches: int,
    batch_size: int,
    seq_len: int,
    seed: int = 0,
    disjoint: bool = True,
) -> Batches:
    """Uniformly random tokens: the upper bound of diversity.

    ``disjoint`` (the default): each batch draws from its own slice of a random partition
    of ``vocab``, so no two batches share a token. Uniform tokens over the whole vocabulary
    (the paper's construction) make every batch the same distribution: under the exact
    closed-form estimator their coefficient is near zero, not an upper bound (the paper's
    0.40 comes largely from Monte Carlo noise)."""
    rng = seeds.rng(seed, 0x0FF)
    vocab = np.asarray(vocab)
    if not disjoint:
        ids = rng.choice(vocab, size=(n_batches, batch_size, seq_len))
    else:
        size = len(vocab) // n_batches
        if size < 1:
            raise ConfigError(
                f"{len(vocab)} tokens cannot be split into {n_batches} disjoint batches"
            )
        parts = rng.permutation(vocab)[: size * n_batches].reshape(n_batches, size)
        ids = np.stack([rng.choice(part, size=(batch_size, seq_len)) for part in parts])
    name = "random tokens (disjoint per batch)" if disjoint else "uniform random tokens"
    return Batches(ids.astype(np.int64), np.ones_like(ids, dtype=np.int64), name, 0.0)


def repeated_token_batches(token: int, n_batches: int, batch_size: int, seq_len: int) -> Batches:
    """One token repeated everywhere: the lower bound of diversity."""
    ids = np.full((n_batches, batch_size, seq_len), token, dtype=np.int64)
    return Batches(ids, np.ones_like(ids), "repeated token", 0.0)
