"""Real-text corpora as divlab token data sets.

``prepare_text`` reads documents from JSONL, Parquet, plain text (one document per line,
per blank-line-separated paragraph, or per Debian ``fortune`` entry between ``%`` lines)
and Hugging Face ``datasets`` folders saved with ``save_to_disk``; splits them into train
and eval with a seeded shuffle; tokenizes them with a byte-level BPE trained on the train
split (``tokenizers``) or a tokenizer loaded from disk; and writes the data set format of
:mod:`divlab.data.store` (``<split>.parquet`` with ``doc_id``, ``split``, ``text``,
``tokens``, ``n_tokens``; ``tokenizer/``; ``summary.json`` with ``kind: "text"``), so
training, diversity measures and curation read text exactly as they read GINC data.

Libraries: ``tokenizers`` (BPE training and encoding), ``transformers``
(``PreTrainedTokenizerFast``, the saved tokenizer), ``pyarrow`` (Parquet in and out) and
``datasets`` (only for ``save_to_disk`` folders). Nothing here runs code from a file it
reads: no pickle, no ``trust_remote_code``.
"""

from __future__ import annotations

import itertools
import json
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

import divlab
from divlab.data.store import FORMAT_VERSION, tokenizer_summary
from divlab.errors import ConfigError, DataError
from divlab.io import atomic_directory, check_text_column, write_json
from divlab.progress import bar

DocumentSplit = Literal["line", "paragraph", "fortune"]
DOCUMENT_SPLITS = ("line", "paragraph", "fortune")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
TEXT_SUFFIXES = ("", ".txt")  # Debian fortune files have no suffix
FORTUNE_SNIFF_LINES = 1000  # a text file with a lone "%" line among these is a fortune file
READ_BATCH_DOCS = 1000
WRITE_BATCH_DOCS = 10_000  # documents tokenized and written per Parquet row group
PARQUET_COMPRESSION = "zstd"  # as for GINC data sets
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0-3 of a trained tokenizer
GPT2_EOS = "<|endoftext|>"
# Names under which a loaded tokenizer's special tokens are recognised, most likely first.
SPECIAL_CANDIDATES = {
    "eos_token": ("<eos>", "</s>", GPT2_EOS),
    "bos_token": ("<bos>", "<s>"),
    "pad_token": ("<pad>", "[PAD]"),
    "unk_token": ("<unk>", "[UNK]"),
}
GPT2_FILE_NAMES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


# --- reading documents ---------------------------------------------------------------


def read_documents(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    field: str = "text",
    by: DocumentSplit | None = None,
    limit: int | None = None,
) -> Iterator[str]:
    """The documents of ``paths``, in order, as strings.

    * ``.jsonl`` / ``.ndjson``: one JSON object per line, its ``field`` key;
    * ``.parquet``: the ``field`` column, read in batches;
    * ``.txt`` or no suffix: ``by="line"`` (one document per non-blank line),
      ``"paragraph"`` (blocks separated by blank lines) or ``"fortune"`` (blocks separated
      by lines holding a single ``%``, as in Debian's ``fortunes``); by default a file
      with a lone ``%`` line among its first 1000 lines is read as fortunes, others by line;
    * a folder written by ``datasets``' ``save_to_disk``: the ``field`` column.

    Records whose field is empty or null come out as ``""`` (``prepare_text`` drops and
    counts them); ``limit`` stops after that many documents. Paths are checked at once;
    bad content raises :class:`DataError` naming the file and line when it is reached.
    """
    if by is not None and by not in DOCUMENT_SPLITS:
        raise ConfigError(f"by must be one of {', '.join(DOCUMENT_SPLITS)}, got {by!r}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    sources = [(_source_kind(path), path) for path in _as_paths(paths)]
    readers = {"jsonl": _read_jsonl, "parquet": _read_parquet, "text": _read_text, "hf": _read_hf}
    documents = itertools.chain.from_iterable(
        readers[kind](path, field, by) for kind, path in sources
    )
    return itertools.islice(documents, limit)


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("no input files given; pass at least one corpus file or folder")
    return paths


def _source_kind(path: Path) -> str:
    if not path.exists():
        raise DataError(f"input {path} does not exist; check the path")
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return "hf"
        raise ConfigError(
            f"input {path} is a folder but not a Hugging Face dataset saved with "
            "save_to_disk; pass the corpus files inside it instead"
        )
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    if suffix in TEXT_SUFFIXES:
        return "text"
    raise ConfigError(
        f"input {path} has an unknown file type {suffix!r}; use .jsonl, .parquet, .txt, "
        "a fortune file (no suffix) or a folder saved with datasets' save_to_disk"
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline); \\r\\n and a UTF-8 BOM are handled."""
    number = 0
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                yield number, line.rstrip("\n")
    except UnicodeDecodeError:
        raise DataError(
            f"{path} is not UTF-8 text (undecodable bytes after line {number}); "
            "convert it, e.g. with iconv"
        ) from None


def _text_value(value, where: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {field!r} holds a {type(value).__name__}, not text; "
            "pass the name of the text field (--field NAME; field= in Python)"
        )
    return value


def _read_jsonl(path: Path, field: str, by) -> Iterator[str]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path} line {number} is not valid JSON ({e.msg}); fix or remove that line"
            ) from None
        except (ValueError, RecursionError):  # a number of > 4300 digits, nesting too deep
            raise DataError(
                f"{path} line {number} is not valid JSON (a number too long or nesting too "
                "deep); fix or remove that line"
            ) from None
        if not isinstance(record, dict) or field not in record:
            keys = f" (it has {', '.join(map(repr, record))})" if isinstance(record, dict) else ""
            raise DataError(
                f"{path} line {number} has no {field!r} key{keys}; "
                "pass the name of the text field (--field NAME; field= in Python)"
            )
        yield _text_value(record[field], f"{path} line {number}", field)


def _read_parquet(path: Path, field: str, by) -> Iterator[str]:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path} is not a readable Parquet file ({e})") from None
    check_text_column(file.schema_arrow, field, path)
    for batch in file.iter_batches(batch_size=READ_BATCH_DOCS, columns=[field]):
        for value in batch.column(0).to_pylist():
            yield value or ""


def _read_hf(path: Path, field: str, by) -> Iterator[str]:

    try:
        data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DataError(f"cannot load the saved dataset {path} ({e})") from None
    if isinstance(data, datasets.DatasetDict):
        if len(data) != 1:
            raise ConfigError(
                f"{path} holds the splits {', '.join(data)}; pass one of them as {path}/<split>"
            )
        (data,) = data.values()
    if field not in data.column_names:
        raise DataError(
            f"{path} has no column {field!r} (columns: {', '.join(data.column_names)}); "
            "pass the name of the text column (field=...)"
        )
    for batch in data.select_columns([field]).iter(batch_size=READ_BATCH_DOCS):
        for value in batch[field]:
            yield _text_value(value, str(path), field)


def _is_fortune_file(path: Path) -> bool:
    head = itertools.islice(_lines(path), FORTUNE_SNIFF_LINES)
    return any(line == "%" for _, line in head)


def _read_text(path: Path, field: str, by) -> Iterator[str]:
    if by is None:
        by = "fortune" if _is_fortune_file(path) else "line"
    if by == "line":
        for _, line in _lines(path):
            if line.strip():
                yield line
        return
    if by == "fortune":
        separator, last = (lambda line: line == "%"), "%"
    else:
        separator, last = (lambda line: not line.strip()), ""
    block: list[str] = []
    for _, line in itertools.chain(_lines(path), [(0, last)]):  # `last` flushes the last block
        if separator(line):
            text = "\n".join(block).strip("\n")  # fortunes may hold blank lines inside
            if text.strip():
                yield text
            block = []
        else:
            block.append(line)


# --- tokenizers ----------------------------------------------------------------------


def _wrap(core, **special_tokens):
    """A ``PreTrainedTokenizerFast`` around a ``tokenizers.Tokenizer`` that decodes text
    exactly as it was (no clean-up of spaces before punctuation)."""

    return PreTrainedTokenizerFast(
        tokenizer_object=core, clean_up_tokenization_spaces=False, **special_tokens
    )


def _check_vocab_size(vocab_size: int) -> None:
    smallest = 256 + len(SPECIAL_TOKENS)
    if vocab_size < smallest:
        raise ConfigError(
            f"vocab_size must be >= {smallest} (256 bytes + {len(SPECIAL_TOKENS)} special "
            f"tokens), got {vocab_size}"
        )


def train_bpe_tokenizer(documents: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """A byte-level BPE (GPT-2 style: bytes, then merges learnt by frequency) trained on
    ``documents``, as a ``PreTrainedTokenizerFast`` with ``<pad>``, ``<bos>``, ``<eos>``,
    ``<unk>`` (ids 0-3). Every string round-trips: ``decode(encode(s)) == s``. Training is
    deterministic: same documents in the same order, same tokenizer. The vocabulary can
    end smaller than ``vocab_size`` when the corpus has fewer pairs worth merging."""

    _check_vocab_size(vocab_size)
    core = Tokenizer(models.BPE())
    # no prefix space and no normaliser: the text is kept byte for byte
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(documents, trainer)
    pad, bos, eos, unk = SPECIAL_TOKENS
    return _wrap(core, pad_token=pad, bos_token=bos, eos_token=eos, unk_token=unk)


def _gpt2_tokenizer(vocab: Path, merges: Path):

    try:
        model = models.BPE.from_file(str(vocab), str(merges))
    except Exception as e:  # tokenizers raises a bare Exception for unreadable files
        raise DataError(f"cannot read GPT-2 BPE files {vocab} and {merges} ({e})") from None
    core = Tokenizer(model)
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return core


def _with_special_tokens(core):
    """Wrap a bare ``tokenizers.Tokenizer``, recognising its special tokens by name and
    adding ``<|endoftext|>`` as eos when it has none (a data set needs an eos)."""
    vocab = core.get_vocab(with_added_tokens=True)
    if not any(name in vocab for name in SPECIAL_CANDIDATES["eos_token"]):
        core.add_special_tokens([GPT2_EOS])
        vocab = core.get_vocab(with_added_tokens=True)
    special = {}
    for role, names in SPECIAL_CANDIDATES.items():
        found = next((name for name in names if name in vocab), None)
        if found is not None:
            special[role] = found
    special.setdefault("pad_token", special["eos_token"])
    return _wrap(core, **special)


def load_tokenizer(path: str | os.PathLike | Sequence[str | os.PathLike]):
    """A ``PreTrainedTokenizerFast`` from disk (never running code from the files):

    * a folder written by ``save_pretrained`` (holding ``tokenizer.json``);
    * a ``tokenizer.json`` file (the ``tokenizers`` format);
    * GPT-2 style byte-level BPE files: a folder with ``vocab.json`` + ``merges.txt`` (or
      OpenAI's names ``encoder.json`` + ``vocab.bpe``), or the two files as a pair.

    Special tokens are taken from the saved config, else recognised by name; a tokenizer
    without an end-of-text token gets ``<|endoftext|>`` as eos (and as pad if it has none).
    """

    if isinstance(path, list | tuple):
        files = [Path(p) for p in path]
        vocab = [p for p in files if p.suffix == ".json"]
        merges = [p for p in files if p.suffix != ".json"]
        if len(vocab) != 1 or len(merges) != 1:
            raise ConfigError(
                "pass GPT-2 BPE files as a pair: the vocabulary (.json) and the merges "
                f"(.txt or .bpe); got {', '.join(map(str, files))}"
            )
        for file in files:
            if not file.is_file():
                raise ConfigError(f"tokenizer file {file} does not exist; check the path")
        return _with_special_tokens(_gpt2_tokenizer(vocab[0], merges[0]))

    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").exists():
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
            if tokenizer.eos_token_id is None:
                return _with_special_tokens(tokenizer.backend_tokenizer)
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer
        for vocab_name, merges_name in GPT2_FILE_NAMES:
            if (path / vocab_name).exists() and (path / merges_name).exists():
                core = _gpt2_tokenizer(path / vocab_name, path / merges_name)
                return _with_special_tokens(core)
        raise ConfigError(
            f"tokenizer folder {path} holds neither tokenizer.json nor GPT-2 BPE files "
            "(vocab.json + merges.txt); save one with save_pretrained"
        )
    if not path.is_file():
        raise ConfigError(f"tokenizer {path} does not exist; check the path")
    try:
        core = Tokenizer.from_file(str(path))
    except Exception:  # tokenizers raises a bare Exception for files it cannot parse
        raise ConfigError(
            f"{path} is not a tokenizer.json file; for GPT-2 style BPE files pass their folder "
            "or the pair (vocab.json, merges.txt)"
        ) from None
    return _with_special_tokens(core)


# --- writing a data set --------------------------------------------------------------


def _schema(token_type: pa.DataType) -> pa.Schema:
    return pa.schema(
        [
            ("doc_id", pa.int64()),  # position in the order read_documents gives
            ("split", pa.string()),
            ("text", pa.string()),
            ("tokens", pa.list_(token_type)),
            ("n_tokens", pa.int32()),
        ]
    )


def _document_encoder(tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """``encode(texts)``: token ids without added special tokens, reading a special token
    written inside a document (``"<eos>"``) as plain text, so the only special ids in a data
    set are the separators its readers add. That literal mode costs ~35% of the speed, so it
    is used only on the documents that hold such a string."""

    plain = tokenizer.backend_tokenizer
    literal = Tokenizer.from_str(plain.to_str())
    literal.encode_special_tokens = True
    specials = [t.content for t in plain.get_added_tokens_decoder().values() if t.special]

    def encode(texts: list[str]) -> list[list[int]]:
        ids = [e.ids for e in plain.encode_batch_fast(texts, add_special_tokens=False)]
        marked = [i for i, text in enumerate(texts) if any(s in text for s in specials)]
        if marked:
            again = literal.encode_batch_fast([texts[i] for i in marked], add_special_tokens=False)
            for i, encoding in zip(marked, again, strict=True):
                ids[i] = encoding.ids
        return ids

    return encode


def _write_split(
    name: str,
    rows: np.ndarray,
    texts: list[str],
    doc_ids: np.ndarray,
    tokenizer,
    token_type: pa.DataType,
    max_doc_tokens: int | None,
    path: Path,
    progress: bool = False,
) -> dict:
    """Tokenize ``texts[rows]`` and stream them to ``path`` a batch at a time
    (``progress``: a bar over the batches, on stderr)."""
    encode = _document_encoder(tokenizer)
    schema = _schema(token_type)
    token_dtype = np.uint16 if token_type == pa.uint16() else np.uint32
    n_tokens, n_truncated = 0, 0
    with pq.ParquetWriter(path, schema, compression=PARQUET_COMPRESSION) as writer:
        starts = range(0, len(rows), WRITE_BATCH_DOCS)
        for start in bar(starts, f"tokenizing {name}" if progress else None):
            batch_rows = rows[start : start + WRITE_BATCH_DOCS]
            batch_texts = [texts[i] for i in batch_rows]
            ids = encode(batch_texts)
            if max_doc_tokens is not None:
                for j, doc in enumerate(ids):
                    if len(doc) > max_doc_tokens:
                        ids[j] = doc[:max_doc_tokens]
                        # the stored text is what the kept tokens spell
                        batch_texts[j] = tokenizer.decode(ids[j], skip_special_tokens=False)
                        n_truncated += 1
            lengths = np.fromiter(map(len, ids), np.int32, len(ids))
            offsets = np.zeros(len(ids) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            # numpy then Arrow: about 7x faster than pa.array on nested Python lists
            values = np.fromiter(itertools.chain.from_iterable(ids), token_dtype, offsets[-1])
            columns = [
                pa.array(doc_ids[batch_rows], pa.int64()),
                pa.array([name] * len(ids), pa.string()),
                pa.array(batch_texts, pa.string()),
                pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, token_type)),
                pa.array(lengths, pa.int32()),
            ]
            writer.write_table(pa.table(columns, schema=schema))
            n_tokens += int(offsets[-1])
    return {
        "n_docs": len(rows),
        "n_tokens": n_tokens,
        "mean_doc_tokens": n_tokens / len(rows),
        "n_truncated": n_truncated,
    }


def prepare_text(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    tokenizer=None,
    vocab_size: int | None = None,
    field: str = "text",
    by: DocumentSplit | None = None,
    eval_fraction: float | None = None,
    eval_docs: int | None = None,
    seed: int = 0,
    max_doc_tokens: int | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Turn text corpora into a divlab data set folder ``out`` (see the module docstring).

    ``tokenizer``: a path for :func:`load_tokenizer` (or a loaded tokenizer); or
    ``vocab_size``: train a byte-level BPE of that size on the train split. The documents
    (``read_documents(inputs, field, by, limit)``, empty ones dropped and counted) are
    shuffled with ``seed``; the first ``eval_docs`` (or ``eval_fraction`` of them, default
    0.05, at least one) form the ``eval`` split, the rest ``train``; both keep the shuffled
    order. ``doc_id`` is a document's position in the order read. Documents longer than
    ``max_doc_tokens`` are cut to that many tokens and their ``text`` to what those tokens
    spell. Special tokens written inside a document are encoded as plain text, so the only
    special ids in a data set are the separators a reader adds. Same inputs and arguments,
    same bytes. Nothing is left at ``out`` if anything fails. ``progress``: bars over the
    tokenization, on stderr.
    """
    if (tokenizer is None) == (vocab_size is None):
        raise ConfigError("give exactly one of tokenizer (a path) and vocab_size (to train one)")
    if eval_fraction is not None and eval_docs is not None:
        raise ConfigError("give eval_fraction or eval_docs, not both")
    if eval_fraction is None and eval_docs is None:
        eval_fraction = 0.05
    if eval_fraction is not None and not 0.0 <= eval_fraction <= 1.0:
        raise ConfigError(f"eval_fraction must be in [0, 1], got {eval_fraction}")
    if eval_fraction == 1.0 and tokenizer is None:
        raise ConfigError(
            "eval_fraction 1.0 puts every document in eval, leaving none to train a "
            "tokenizer on; give the tokenizer of the model you will evaluate"
        )
    if eval_docs is not None and eval_docs < 0:
        raise ConfigError(f"eval_docs must be >= 0, got {eval_docs}")
    if max_doc_tokens is not None and max_doc_tokens < 1:
        raise ConfigError(f"max_doc_tokens must be >= 1, got {max_doc_tokens}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    paths = _as_paths(inputs)
    documents = read_documents(paths, field=field, by=by, limit=limit)
    if isinstance(tokenizer, str | os.PathLike | list | tuple):
        tokenizer_source = (
            [str(p) for p in tokenizer] if isinstance(tokenizer, list | tuple) else str(tokenizer)
        )
        tokenizer = load_tokenizer(tokenizer)
    elif tokenizer is not None:
        tokenizer_source = getattr(tokenizer, "name_or_path", "") or "given"
    else:
        tokenizer_source = f"byte-level BPE trained on the train split (vocab_size {vocab_size})"
    if tokenizer is not None and tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no eos token; set one (data sets separate docs by it)")
    if vocab_size is not None:
        _check_vocab_size(vocab_size)

    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        texts: list[str] = []
        doc_ids = array("q")
        n_read = 0
        for n_read, text in enumerate(documents, 1):
            if text.strip():
                texts.append(text)
                doc_ids.append(n_read - 1)
        n_docs = len(texts)
        if n_docs == 0:
            raise DataError(
                f"no non-empty documents in {', '.join(map(str, paths))} ({n_read} read); "
                "check field and by"
            )
        n_eval = eval_docs if eval_docs is not None else 0
        if eval_fraction:
            n_eval = max(1, round(eval_fraction * n_docs))
        everything = eval_fraction == 1.0  # a held-out set only: every document in eval
        if n_eval >= n_docs and not everything:
            raise DataError(
                f"{n_docs} documents leave none for training after {n_eval} eval documents; "
                "lower eval_docs / eval_fraction (or 1.0: all in eval) or add documents"
            )
        order = np.random.default_rng(seed).permutation(n_docs)
        splits = {"train": order[n_eval:], "eval": order[:n_eval]}
        if everything:
            del splits["train"]
        if n_eval == 0:
            del splits["eval"]
        if tokenizer is None:
            tokenizer = train_bpe_tokenizer((texts[i] for i in splits["train"]), vocab_size)

        token_type = pa.uint16() if len(tokenizer) <= 1 << 16 else pa.uint32()
        ids = np.frombuffer(doc_ids, dtype=np.int64)
        split_summaries = {
            name: _write_split(
                name,
                rows,
                texts,
                ids,
                tokenizer,
                token_type,
                max_doc_tokens,
                tmp / f"{name}.parquet",
                progress,
            )
            for name, rows in splits.items()
        }
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        write_json(
            tmp / "summary.json",
            {
                "format_version": FORMAT_VERSION,
                "kind": "text",
                "tokenizer": {**tokenizer_summary(tmp / "tokenizer"), "source": tokenizer_source},
                "divlab_version": divlab.__version__,
                "sources": {
                    "paths": [str(p) for p in paths],
                    "field": field,
                    "by": by or "auto",
                    "limit": limit,
                },
                "documents": {"read": n_read, "empty_dropped": n_read - n_docs, "kept": n_docs},
                "seed": seed,
                "max_doc_tokens": max_doc_tokens,
                "splits": split_summaries,
            },
        )
    return out
