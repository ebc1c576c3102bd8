"""Token data sets on disk: the one format every stage reads.

A data set is a folder with ``summary.json`` (written last: its presence means the folder
is complete), ``tokenizer/`` (a Hugging Face tokenizer), and one ``<split>.parquet`` per
split with at least a ``tokens`` column (a list of token ids per document). GINC data
sets add ground-truth columns (``concept``, ``noise``, ``duplicate_of``, ``oracle_nll``,
...) and ``prompts.parquet``; text data sets add the ``text`` column. ``summary.json``
has ``kind`` ("ginc" or "text") and ``splits`` (name -> counts).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from transformers import PreTrainedTokenizerFast

from divlab.errors import ConfigError, DataError
from divlab.io import atomic_directory, read_json, write_json

FORMAT_VERSION = 1


def token_lists(tokens) -> pa.ListArray:
    """(N, L) uint16 tokens, or a list of N documents of any lengths, as an Arrow list
    column without copying the values element by element (``pa.array`` on a large uint16
    array does: ~70 ns a token)."""
    if isinstance(tokens, np.ndarray) and tokens.ndim == 2:
        tokens = np.ascontiguousarray(tokens, dtype=np.uint16)
        n_rows, length = tokens.shape
        offsets = np.arange(0, (n_rows + 1) * length, length, dtype=np.int32)
    else:  # ragged documents
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        tokens = np.concatenate([np.asarray(t) for t in tokens]) if len(lengths) else []
        tokens = np.ascontiguousarray(tokens, dtype=np.uint16)
    values = pa.Array.from_buffers(pa.uint16(), tokens.size, [None, pa.py_buffer(tokens)])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def tokenizer_summary(directory: str | Path) -> dict:
    """The facts about a saved tokenizer that training needs, for ``summary.json``."""

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory))
    if tokenizer.eos_token_id is None:
        raise DataError(f"the tokenizer in {directory} has no eos token; add one")
    return {
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


# The TokenDataset subclass of each data set kind; ``divlab.data`` imports them all.
_CLASSES: dict[str, type] = {}


class TokenDataset:
    """A finished data set folder (see the module docstring)."""

    kind = "tokens"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.kind] = cls  # open_dataset opens a folder of this kind as ``cls``

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(
                f"{self.path} is not a folder; create a data set with `divlab ginc generate` "
                "or `divlab data prepare`"
            )
        if not (self.path / "summary.json").exists():
            raise DataError(
                f"{self.path} is not a finished divlab data set (no summary.json); "
                "regenerate it with `divlab ginc generate` or `divlab data prepare`"
            )
        self.summary = read_json(self.path / "summary.json")
        if not isinstance(self.summary, dict):
            raise DataError(
                f"{self.path}/summary.json is not a mapping of fields; regenerate the data set"
            )
        if self.summary.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{self.path} has an unsupported format version; regenerate it")
        _check_summary(self.path, self.summary)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def splits(self) -> list[str]:
        return list(self.summary["splits"])

    def data_split(self, split: str | None = None) -> str:
        """The split a data measure reads: ``split`` if given (it must exist), else
        ``train``, else the set's first split (a held-out set made with
        ``--eval-fraction 1.0`` holds only ``eval``)."""
        if split is not None:
            self.split_path(split)  # the error names the splits there are
            return split
        return "train" if "train" in self.splits else self.splits[0]

    def split_path(self, split: str) -> Path:
        if split not in self.summary["splits"]:
            raise DataError(f"{self.path} has no split {split!r}; it has {', '.join(self.splits)}")
        return self.path / f"{split}.parquet"

    def table(self, split: str, columns: list[str] | None = None) -> pa.Table:
        path = self.split_path(split)
        with _readable(path):
            if columns:
                _check_columns(path, pq.read_schema(path), columns)
            return pq.read_table(path, columns=columns)

    def table_schema(self, split: str) -> pa.Schema:
        """The columns of a split, without reading it."""
        path = self.split_path(split)
        with _readable(path):
            return pq.read_schema(path)

    def documents(self, split: str) -> list[np.ndarray]:
        """Token ids of every document of a split (int64 arrays)."""
        column = self.table(split, ["tokens"]).column(0).combine_chunks()
        if len(column) == 0:
            return []
        offsets = column.offsets.to_numpy()
        values = column.flatten().to_numpy().astype(np.int64)
        return np.split(values, offsets[1:-1] - offsets[0])

    def to_hf(self, split: str):
        """The split as a ``datasets.Dataset`` (memory-mapped Arrow)."""

        return datasets.Dataset.from_parquet(str(self.split_path(split)))

    def tokenizer(self):

        return PreTrainedTokenizerFast.from_pretrained(str(self.path / "tokenizer"))

    @property
    def eos_token_id(self) -> int:
        return int(self.summary["tokenizer"]["eos_token_id"])

    @property
    def vocab_size(self) -> int:
        """Number of token ids (the model's embedding size), specials included."""
        return int(self.summary["tokenizer"]["vocab_size"])

    def iter_token_blocks(
        self, split: str, block_size: int, separator: int | None = None, batch_docs: int = 64
    ) -> Iterator[np.ndarray]:
        """Stream the split as consecutive ``block_size``-token blocks (int64), documents
        joined by ``separator`` (default: ``<eos>``); the last partial block is dropped.
        Reads ``batch_docs`` documents at a time (constant memory)."""
        if block_size < 1:
            raise ConfigError(f"block_size must be >= 1, got {block_size}")
        if separator is None:
            separator = self.eos_token_id
        buffer = np.empty(0, dtype=np.int64)
        path = self.split_path(split)
        with _readable(path):
            reader = pq.ParquetFile(path)
            _check_columns(path, reader.schema_arrow, ["tokens"])
        for batch in _batches(path, reader, batch_docs, ["tokens"]):
            lists = batch.column(0)
            offsets = lists.offsets.to_numpy()
            values = lists.flatten().to_numpy().astype(np.int64)
            joined = np.insert(values, offsets[1:] - offsets[0], separator)
            buffer = np.concatenate([buffer, joined])
            n_full = len(buffer) // block_size
            for j in range(n_full):
                yield buffer[j * block_size : (j + 1) * block_size]
            buffer = buffer[n_full * block_size :]

    def info(self) -> dict:
        return {"path": str(self.path), **self.summary}


def _check_summary(path: Path, summary: dict) -> None:
    """The fields of ``summary.json`` every reader relies on, with their types: a
    DataError naming the first that is missing or wrong, never a KeyError later."""
    where = f"{path}/summary.json"
    splits = summary.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(k, str) for k in splits):
        raise DataError(f"{where} has no mapping of split names (splits); regenerate the data set")
    tokenizer = summary.get("tokenizer")
    if not isinstance(tokenizer, dict):
        raise DataError(f"{where} has no tokenizer facts (tokenizer); regenerate the data set")
    for key in ("vocab_size", "eos_token_id"):
        value = tokenizer.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(
                f"{where}: tokenizer.{key} is {value!r}, not a count >= 0; regenerate the data set"
            )
    kind = summary.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise DataError(f"{where}: kind is {kind!r}, not a name; regenerate the data set")


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Turn a split file that is missing or not Parquet into one DataError."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing although summary.json lists its split; regenerate the data set"
        ) from None
    except (pa.ArrowException, OSError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise DataError(
            f"{path} is not a readable Parquet file ({reason}); regenerate the data set"
        ) from None


def _batches(path: Path, reader: pq.ParquetFile, batch_size: int, columns: list[str]):
    """``reader``'s record batches; a corrupt page is a DataError naming ``path``."""
    batches = reader.iter_batches(batch_size=batch_size, columns=columns)
    while True:
        with _readable(path):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def _check_columns(path: Path, schema: pa.Schema, columns: list[str]) -> None:
    """Each of ``columns`` is in the split file; ``tokens`` is a list of integer ids."""
    for name in columns:
        if name not in schema.names:
            raise DataError(
                f"{path} has no column {name!r} (columns: {', '.join(schema.names) or 'none'}); "
                "regenerate the data set"
            )
    if "tokens" in columns:
        kind = schema.field("tokens").type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not (
            pa.types.is_integer(kind.value_type)
        ):
            raise DataError(
                f"{path}: column 'tokens' holds {kind}, not lists of token ids; "
                "regenerate the data set"
            )


def open_dataset(path: str | Path) -> TokenDataset:
    """Open a data set folder as the class of its kind (``GincDataset`` for GINC)."""
    base = TokenDataset(path)
    kind = _CLASSES.get(base.summary.get("kind"))
    return kind(path) if kind is not None else base


def write_dataset(
    out: str | Path,
    like: TokenDataset,
    splits: dict[str, pa.Table],
    overwrite: bool = False,
    **summary,
) -> TokenDataset:
    """A new data set folder with ``like``'s tokenizer and kind: ``splits`` maps a split
    name to a table with a ``tokens`` column (any other columns, e.g. ``concept``, are
    kept); ``summary`` adds fields to ``summary.json`` (e.g. ``provenance``). Written
    atomically (``summary.json`` last). Used for corpora built from other data sets:
    generated text (model collapse), mixtures and curricula."""

    base = {k: v for k, v in like.summary.items() if k not in ("splits", "prompts")}
    counts = {}
    for name, table in splits.items():
        if "tokens" not in table.column_names:
            raise DataError(f"split {name!r} needs a 'tokens' column")
        if table.num_rows == 0:
            raise DataError(f"split {name!r} has no documents")
        lengths = pc.list_value_length(table.column("tokens"))
        counts[name] = {"n_docs": table.num_rows, "n_tokens": int(pc.sum(lengths).as_py())}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        shutil.copytree(like.path / "tokenizer", tmp / "tokenizer")
        for name, table in splits.items():
            pq.write_table(table, tmp / f"{name}.parquet", compression="zstd")
        write_json(tmp / "summary.json", {**base, "splits": counts, "prompts": None, **summary})
    return open_dataset(out)
