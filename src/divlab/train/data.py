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


class PackedSequences:
    def __init__(
        self, dataset: TokenDataset, split: str, seq_len: int, seed: int, shuffle: bool = True
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

    def batch(self, start: int, count: int) -> np.ndarray:
        """Sequences ``start .. start + count - 1`` of the run's infinite, epoch-wise order."""
        first, last = divmod(start, len(self))[0], divmod(start + count - 1, len(self))[0]
        if first == last:  # the common case, one epoch: one vectorised gather
            offset = start - first * len(self)
            return self.sequences[self._order(first)[offset : offset + count]]
        rows = []
        for i in range(start, start + count):
            epoch, position = divmod(i, len(self))
            rows.append(self._order(epoch)[position])
        return self.sequences[np.asarray(rows)]
