"""Training batches: documents packed into fixed-length sequences, in a seeded order.

Documents of a split are joined in file order with ``<eos>`` after each and cut into
``seq_len``-token sequences (the remainder is dropped). Epoch ``e`` visits the sequences
in the permutation drawn from ``(seed, e)`` (or, with ``shuffle=False``, in file order:
a curriculum written into the data set's document order), so the ``i``-th sequence of a
run is a pure function of ``(seed, i)``: a resumed run needs only its step count to
continue exactly.
"""

from __future__ import annotations

import numpy as np

from divlab import seeds
from divlab.data.store import TokenDataset
from divlab.errors import ConfigError

IGNORE = -100  # the label Hugging Face's loss skips


class PackedSequences:
    def __init__(
        self,
        dataset: TokenDataset,
        split: str,
        seq_len: int,
        seed: int,
        shuffle: bool = True,
        loss_on: str = "all",
    ) -> None:
        if seq_len < 2:
            raise ConfigError(f"seq_len must be >= 2, got {seq_len}")
        documents = dataset.documents(split)
        eos = dataset.eos_token_id
        stream = np.concatenate([np.append(d, eos) for d in documents]) if documents else []
        n = len(stream) // seq_len
        if n == 0:
            raise ConfigError(
                f"split {split!r} of {dataset.path} has {len(stream)} tokens, fewer than one "
                f"sequence of seq_len={seq_len}; lower seq_len or add data"
            )
        self.sequences = np.asarray(stream[: n * seq_len], dtype=np.int64).reshape(n, seq_len)
        self.labels = None  # None: every token is a target (the labels are the inputs)
        if loss_on == "response":
            prompt = _prompt_mask(dataset, split, documents, seq_len)
            labels = np.where(prompt[: n * seq_len], IGNORE, stream[: n * seq_len])
            self.labels = labels.astype(np.int64).reshape(n, seq_len)
        elif loss_on != "all":
            raise ConfigError(f"loss_on must be 'all' or 'response', not {loss_on!r}")
        self.seed, self.shuffle = seed, shuffle
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def tokens(self) -> int:
        return self.sequences.size

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self))
        if epoch not in self._orders:
            rng = seeds.rng(self.seed, 0xDA7A, epoch)
            self._orders = {epoch: rng.permutation(len(self))}  # keep one epoch in memory
        return self._orders[epoch]

    def rows(self, start: int, count: int) -> np.ndarray:
        """Rows of sequences ``start .. start + count - 1`` of the run's infinite,
        epoch-wise order."""
        first, last = divmod(start, len(self))[0], divmod(start + count - 1, len(self))[0]
        if first == last:  # the common case, one epoch: one vectorised gather
            offset = start - first * len(self)
            return self._order(first)[offset : offset + count]
        rows = []
        for i in range(start, start + count):
            epoch, position = divmod(i, len(self))
            rows.append(self._order(epoch)[position])
        return np.asarray(rows)

    def batch(self, start: int, count: int) -> np.ndarray:
        """Sequences ``start .. start + count - 1`` of the run's order."""
        return self.sequences[self.rows(start, count)]

    def label_batch(self, start: int, count: int) -> np.ndarray | None:
        """Their labels (prompt tokens ``IGNORE``), or None when every token is a target."""
        return None if self.labels is None else self.labels[self.rows(start, count)]


def _prompt_mask(dataset: TokenDataset, split: str, documents: list, seq_len: int) -> np.ndarray:
    """Per token of the packed stream: True inside a document's prompt (its first
    ``prompt_length`` tokens, a column of the split); the response and the ``<eos>`` after
    it are targets. A prompt of seq_len - 1 tokens or more could fill a sequence with no
    target at all (a 0/0 loss), so it is refused."""
    columns = dataset.table(split).column_names
    if "prompt_length" not in columns:
        raise ConfigError(
            f"loss_on: response needs a prompt_length column in split {split!r} of "
            f"{dataset.path} (an instruction data set); use loss_on: all for plain text"
        )
    lengths = dataset.table(split, ["prompt_length"]).column("prompt_length").to_numpy()
    if len(lengths) and lengths.max() >= seq_len - 1:
        raise ConfigError(
            f"a prompt of {int(lengths.max())} tokens in {dataset.path} leaves no target in "
            f"a sequence of seq_len={seq_len}; raise seq_len above the longest prompt + 1"
        )
    parts = []
    for document, length in zip(documents, lengths, strict=True):
        mask = np.zeros(len(document) + 1, dtype=bool)
        mask[: int(length)] = True
        parts.append(mask)
    return np.concatenate(parts)
