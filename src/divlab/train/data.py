"""Training batches: documents packed into fixed-length sequences, in a seeded order.

Documents of a split are joined in file order with ``<eos>`` after each and cut into
``seq_len``-token sequences (the remainder is dropped). Epoch ``e`` visits the sequences
in the permutation drawn from ``(seed, e)`` (or, with ``shuffle=False``, in file order:
a curriculum written into the data set's document order), so the ``i``-th sequence of a
run is a pure function of ``(seed, i)``: a resumed run needs only its step count to
continue exactly.

Instruction data sets (a ``prompt_length`` column) pack whole examples instead: each
example and its ``<eos>`` go into one sequence, never cut from its prompt, the rest of a
sequence padded and not a target; with ``loss_on: response`` the prompts are not targets
either (``IGNORE`` labels).
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
        if loss_on not in ("all", "response"):
            raise ConfigError(f"loss_on must be 'all' or 'response', not {loss_on!r}")
        documents = dataset.documents(split)
        eos = dataset.eos_token_id
        self.labels = None  # None: every token is a target (the labels are the inputs)
        if "prompt_length" in dataset.table_schema(split).names:  # instruction examples
            self.sequences, self.labels = _whole_examples(
                dataset, split, documents, seq_len, mask_prompts=loss_on == "response"
            )
        elif loss_on == "response":
            raise ConfigError(
                f"loss_on: response needs a prompt_length column in split {split!r} of "
                f"{dataset.path} (an instruction data set); use loss_on: all for plain text"
            )
        else:
            stream = np.concatenate([np.append(d, eos) for d in documents]) if documents else []
            n = len(stream) // seq_len
            if n == 0:
                raise ConfigError(
                    f"split {split!r} of {dataset.path} has {len(stream)} tokens, fewer than "
                    f"one sequence of seq_len={seq_len}; lower seq_len or add data"
                )
            self.sequences = np.asarray(stream[: n * seq_len], np.int64).reshape(n, seq_len)
        # per sequence, the tokens its loss predicts (position 0 never is one)
        self.targets = (
            np.full(len(self.sequences), seq_len - 1, np.int64)
            if self.labels is None
            else (self.labels[:, 1:] != IGNORE).sum(axis=1)
        )
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

    def target_counts(self, start: int, count: int) -> np.ndarray:
        """The tokens each of those sequences' loss predicts."""
        return self.targets[self.rows(start, count)]

    def label_batch(self, start: int, count: int) -> np.ndarray | None:
        """Their labels (prompt tokens ``IGNORE``), or None when every token is a target."""
        return None if self.labels is None else self.labels[self.rows(start, count)]


def _whole_examples(
    dataset: TokenDataset, split: str, documents: list, seq_len: int, mask_prompts: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Instruction examples packed whole: each example and its ``<eos>`` go into the current
    sequence if they fit, else into a new one (the rest padded, never a target), so no
    example is cut from its prompt. Labels are the tokens, ``IGNORE`` on padding and, with
    ``mask_prompts``, on each example's first ``prompt_length`` tokens."""
    lengths = dataset.table(split, ["prompt_length"]).column("prompt_length").to_numpy()
    eos = dataset.eos_token_id
    pad = dataset.summary["tokenizer"].get("pad_token_id")
    pad = eos if pad is None else pad
    sequences, labels = [], []
    tokens = np.full(seq_len, pad, np.int64)
    targets = np.full(seq_len, IGNORE, np.int64)
    used = 0
    for document, prompt in zip(documents, lengths, strict=True):
        example = np.append(np.asarray(document, np.int64), eos)
        if not 0 <= prompt < len(example) - 1:
            raise ConfigError(
                f"{dataset.path}: a prompt_length of {prompt} for an example of "
                f"{len(document)} tokens leaves no response"
            )
        if len(example) > seq_len:
            raise ConfigError(
                f"{dataset.path}: an instruction example of {len(example)} tokens (with "
                f"<eos>) does not fit seq_len={seq_len}; raise seq_len"
            )
        if used + len(example) > seq_len:
            sequences.append(tokens)
            labels.append(targets)
            tokens = np.full(seq_len, pad, np.int64)
            targets = np.full(seq_len, IGNORE, np.int64)
            used = 0
        tokens[used : used + len(example)] = example
        targets[used : used + len(example)] = example
        if mask_prompts:
            targets[used : used + int(prompt)] = IGNORE
        used += len(example)
    if used:
        sequences.append(tokens)
        labels.append(targets)
    if not sequences:
        raise ConfigError(f"split {split!r} of {dataset.path} has no examples")
    return np.stack(sequences), np.stack(labels)
