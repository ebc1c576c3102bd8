"""Raw corpora as curation reads and writes them, in their own format.

A corpus is one file, a list of files, or a folder of them: JSONL (``.jsonl``,
``.ndjson``, ``.json`` lines; plain, ``.gz`` or ``.zst``), Parquet, or one Hugging Face
``save_to_disk`` folder. Curation keeps some of its records and writes them back in the
same format, under the same relative names, with every field in its order: a JSONL record
is copied byte for byte, Parquet rows keep the file's schema and compression, a
``save_to_disk`` folder is written by ``datasets``.

Records are numbered in reading order across the files (``doc_index``, 0-based; a blank
JSONL line is not a record). A record that is not a document — a line that is not JSON or
not UTF-8, an object without the text field, a text that is not a string — is *bad*:
reported with its file and line, never silently dropped.

Reading is split so that the expensive part can run in worker processes: the main process
cuts the input into :class:`Batch` es of raw lines or texts (cheap), :func:`parse` turns a
batch into texts and its bad records. This module imports neither torch nor ``datasets``
(the latter only for ``save_to_disk`` folders), so workers start in well under a second.
Hand-written because no library reads JSONL while keeping each line's bytes and counting
bad lines (pyarrow's JSON reader fails on the first bad one).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from divlab.errors import ConfigError, DataError
from divlab.io import check_text_column

JSONL_SUFFIXES = (".jsonl", ".ndjson")
# .json is read as JSON Lines only when named on its own: in a folder it is more often
# metadata (dataset_info.json, state.json) than a corpus
EXPLICIT_SUFFIXES = (*JSONL_SUFFIXES, ".json")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
READ_BLOCK = 8 << 20  # bytes read at a time from a JSONL file
Format = Literal["jsonl", "parquet", "hf"]


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    relative: Path  # its name under the output folder
    format: Format
    compression: str | None = None  # JSONL: gzip or zstd


@dataclass
class Batch:
    """Consecutive records of one file: raw JSONL lines, or texts (None: no text)."""

    file: int  # index into the corpus' files
    first: int  # the number of the batch's first record within its file (0-based)
    lines: list[bytes] | None = None
    texts: list[str | None] | None = None
    line_numbers: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.lines if self.lines is not None else self.texts)


def is_data_set(path: str | Path) -> bool:
    """A divlab data set folder (GINC or prepared text), not a raw corpus."""
    return (Path(path) / "summary.json").is_file()


def _file_format(path: Path, explicit: bool = False) -> tuple[Format, str | None] | None:
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    core = suffixes[-2] if compression and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if core in (EXPLICIT_SUFFIXES if explicit else JSONL_SUFFIXES):
        return "jsonl", compression
    if core == ".parquet" and not compression:
        return "parquet", None
    return None


def _is_hf(path: Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def corpus_files(inputs) -> list[CorpusFile]:
    """The files of a corpus, in reading order: the given files in their order, a
    folder's corpus files sorted by relative path (other files are ignored), or one
    ``save_to_disk`` folder."""
    paths = [Path(p) for p in ([inputs] if isinstance(inputs, str | Path) else inputs)]
    if not paths:
        raise ConfigError("no corpus given; pass a JSONL or Parquet file or a folder of them")
    files: list[CorpusFile] = []
    for path in paths:
        if not path.exists():
            raise DataError(f"corpus {path} does not exist; check the path")
        if path.is_dir() and _is_hf(path):
            files.append(CorpusFile(path, Path(path.name), "hf"))
        elif path.is_dir():
            found = []
            for item in sorted(path.rglob("*")):
                kind = _file_format(item) if item.is_file() else None
                if kind and not any(p.startswith(".") for p in item.relative_to(path).parts):
                    found.append(CorpusFile(item, item.relative_to(path), *kind))
            if not found:
                raise DataError(
                    f"{path} holds no corpus files (.jsonl, .jsonl.gz, .jsonl.zst, .parquet) "
                    "and is not a divlab data set or a save_to_disk folder"
                )
            files.extend(found)
        else:
            kind = _file_format(path, explicit=True)
            if kind is None:
                raise ConfigError(
                    f"{path} is not a corpus file: use .jsonl (also .gz, .zst), .parquet, a "
                    "folder of them or a Hugging Face save_to_disk folder"
                )
            files.append(CorpusFile(path, Path(path.name), *kind))
    names = [f.relative for f in files]
    for name in {n for n in names if names.count(n) > 1}:
        raise ConfigError(
            f"two corpus files would be written as {name} under --out; pass their common "
            "parent folder instead, so each keeps its own relative path"
        )
    return files


def fingerprint(files: list[CorpusFile]) -> list[list]:
    """What identifies the input for a resumed run: each file's path, size and mtime."""
    out = []
    for f in files:
        targets = sorted(f.path.rglob("*")) if f.path.is_dir() else [f.path]
        stats = [[t.stat().st_size, t.stat().st_mtime_ns] for t in targets if t.is_file()]
        out.append([str(f.path.resolve()), stats])
    return out


# --- reading ----------------------------------------------------------------------------


def _open_binary(f: CorpusFile):
    if f.compression == "gzip":
        return gzip.open(f.path, "rb")
    if f.compression == "zstd":
        return pa.input_stream(str(f.path), compression="zstd")
    return open(f.path, "rb")


def jsonl_lines(f: CorpusFile) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its newline) of every non-blank line."""
    number = 0
    try:
        with _open_binary(f) as stream:
            rest = b""
            while True:
                block = stream.read(READ_BLOCK)
                if not block:
                    break
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    number += 1
                    if line.strip():
                        yield number, line
            if rest.strip():
                yield number + 1, rest
    except (OSError, EOFError, pa.ArrowException) as e:
        raise DataError(f"cannot read {f.path} after line {number}: {e}") from None


def _table_source(f: CorpusFile, text_field: str):
    """(record batches of the text column, number of rows) of a Parquet file or a
    save_to_disk folder; a missing or non-text column is an error before any work."""
    if f.format == "parquet":
        try:
            parquet = pq.ParquetFile(f.path)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{f.path} is not a readable Parquet file ({e})") from None
        schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    else:
        data = _hf_dataset(f)
        schema, rows = data.data.schema, len(data)
    check_text_column(schema, text_field, f.path)

    def batches(size: int) -> Iterator[pa.Array]:
        if f.format == "parquet":
            for batch in parquet.iter_batches(batch_size=size, columns=[text_field]):
                yield batch.column(0)
        else:
            for batch in data.data.table.select([text_field]).to_batches(max_chunksize=size):
                yield batch.column(0)

    return batches, rows


def _hf_dataset(f: CorpusFile):
    import datasets  # heavy; only for save_to_disk folders

    try:
        data = datasets.load_from_disk(str(f.path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DataError(f"cannot load the saved dataset {f.path} ({e})") from None
    if isinstance(data, datasets.DatasetDict):
        raise ConfigError(
            f"{f.path} holds the splits {', '.join(data)}; pass one of them as {f.path}/<split>"
        )
    return data


def check_readable(files: list[CorpusFile], text_field: str) -> None:
    """Fail before any work when a table lacks the text column, or when the first record
    of a JSONL file is not an object with it (a wrong ``--field``, most likely)."""
    for f in files:
        if f.format != "jsonl":
            _table_source(f, text_field)
            continue
        for number, line in jsonl_lines(f):
            if line.lstrip().startswith(b"["):
                raise DataError(
                    f"{f.path} line {number} is a JSON array: divlab reads JSON Lines (one "
                    "object per line); convert it, e.g. jq -c '.[]'"
                )
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                break  # a bad line: counted and reported by the run
            if isinstance(record, dict) and text_field not in record:
                keys = ", ".join(map(repr, record))
                raise DataError(
                    f"{f.path} line {number} has no {text_field!r} field (it has {keys}); "
                    "pass the name of the text field (--field NAME)"
                )
            break


def read_batches(files: list[CorpusFile], text_field: str, batch_records: int) -> Iterator[Batch]:
    """Every record of the corpus, in order, in batches of at most ``batch_records`` that
    never span two files."""
    for index, f in enumerate(files):
        if f.format == "jsonl":
            lines, numbers, first = [], [], 0
            for number, line in jsonl_lines(f):
                lines.append(line)
                numbers.append(number)
                if len(lines) == batch_records:
                    yield Batch(index, first, lines=lines, line_numbers=np.array(numbers))
                    first += len(lines)
                    lines, numbers = [], []
            if lines:
                yield Batch(index, first, lines=lines, line_numbers=np.array(numbers))
            continue
        batches, _ = _table_source(f, text_field)
        first = 0
        for column in batches(batch_records):
            yield Batch(index, first, texts=column.to_pylist())
            first += len(column)


def parse(batch: Batch, text_field: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, indices of the bad records within the batch, why each is bad). A bad
    record's text is ``""``."""
    texts, bad, reasons = [], [], []

    def reject(i: int, why: str) -> None:
        texts.append("")
        bad.append(i)
        reasons.append(why)

    if batch.texts is not None:
        for i, value in enumerate(batch.texts):
            if value is None:
                reject(i, f"no {text_field!r} value (null)")
            else:
                texts.append(value)
        return texts, np.array(bad, dtype=np.int64), reasons
    for i, line in enumerate(batch.lines):
        try:
            record = json.loads(line.decode("utf-8-sig"))  # a BOM on line 1
        except UnicodeDecodeError:
            reject(i, "not UTF-8")
            continue
        except (ValueError, RecursionError):
            reject(i, "not valid JSON")
            continue
        if not isinstance(record, dict):
            reject(i, "not a JSON object")
        elif text_field not in record or record[text_field] is None:
            reject(i, f"no {text_field!r} field")
        elif not isinstance(record[text_field], str):
            reject(i, f"{text_field!r} holds {type(record[text_field]).__name__}, not text")
        else:
            texts.append(record[text_field])
    return texts, np.array(bad, dtype=np.int64), reasons


# --- writing ----------------------------------------------------------------------------


def write_kept(
    files: list[CorpusFile],
    keep: np.ndarray,
    out: Path,
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Write the records with ``keep[doc_index]`` True under ``out``, each file in its own
    format under its relative name (a file that keeps nothing is still written, empty);
    ``advance(n)`` after each file."""
    start = 0
    for f in files:
        target = out / f.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.format == "jsonl":
            count = 0
            with _open_output(f, target) as sink:
                for _, line in jsonl_lines(f):
                    if keep[start + count]:
                        sink.write(line + b"\n")
                    count += 1
        elif f.format == "parquet":
            source = pq.ParquetFile(f.path)
            count = source.metadata.num_rows
            codec = _codec(source)
            with pq.ParquetWriter(target, source.schema_arrow, compression=codec) as writer:
                mask = keep[start : start + count]
                offset = 0
                for group in range(source.metadata.num_row_groups):  # one in, one out
                    table = source.read_row_group(group)
                    part = mask[offset : offset + table.num_rows]
                    writer.write_table(table.filter(pa.array(part)), row_group_size=len(part))
                    offset += table.num_rows
        else:
            data = _hf_dataset(f)
            count = len(data)
            kept = np.flatnonzero(keep[start : start + count])
            data.select(kept).save_to_disk(str(target))
        advance(count)
        start += count


def _open_output(f: CorpusFile, target: Path):
    if f.compression == "gzip":  # no time stamp: the same kept records, the same bytes
        return gzip.GzipFile(target, "wb", compresslevel=6, mtime=0)
    if f.compression == "zstd":
        return pa.output_stream(str(target), compression="zstd")
    return open(target, "wb")


def _codec(source: pq.ParquetFile) -> str:
    meta = source.metadata
    if meta.num_row_groups and meta.num_columns:
        codec = meta.row_group(0).column(0).compression.lower()
        return "none" if codec == "uncompressed" else codec
    return "zstd"
