"""Curation of raw corpora, file to file: JSONL / Parquet / save_to_disk in, the same out.

``dedup_corpus(inputs, out)`` removes exact or near-duplicate documents of a raw corpus
(:mod:`divlab.curate.records`) in bounded memory, whatever its size:

1. **sign** — the corpus is read in batches of ``batch_records`` records (never across
   two files); each batch is parsed and signed in a worker (``workers`` processes, or
   Ray tasks): exact dedup keeps one 64-bit hash of the normalised text per document,
   near dedup the LSH band keys of its MinHash signature (``minhash.band_keys``: 8 bytes
   per band). Each batch's keys are spilled to ``.<OUT>.work/`` through a temporary name
   and a rename: a killed run resumes at the first unsigned batch (the work folder
   records the input files' sizes and times and the settings; a change starts over).
2. **link** — band by band, the keys of every batch are read back (memory-mapped), sorted
   and consecutive equal keys linked: memory is 8 bytes per document per band plus the
   edges, never the signatures. ``verify`` re-reads only the documents on a candidate
   edge and keeps the edges whose exact Jaccard reaches the threshold.
3. **cluster** — connected components of the edge list (scipy); one document kept per
   cluster by ``keep`` (``first`` in reading order, or ``longest``, ties to the first):
   the kept set depends only on the documents and their order, not on the number of
   files, batches, workers or the executor.
4. **write** — a second pass copies the kept records, in their format, under their
   relative names, into ``OUT/``; ``OUT/curation/removed.parquet`` lists every removed
   record (``doc_index``, ``file``, ``record``, ``line``, ``reason``, ``cluster``, and the
   kept document it duplicates: ``kept_doc_index``, ``kept_file``, ``kept_record``) and
   ``OUT/curation/report.json`` the settings, the counts, the keep rule and the time of
   each stage. ``OUT`` appears whole or not at all.

Bad records (not JSON, not UTF-8, no text field; :func:`records.parse`) are counted: the
run stops at the first batch holding one unless ``skip_bad``, which drops them and lists
them in ``removed.parquet`` with their reason.

``filter_corpus`` is the in-memory counterpart for the model-based methods (perplexity
band, SemDeDup, D4): it reads every text, asks a ``select`` function which to keep, and
writes the same outputs.
"""

from __future__ import annotations

import collections
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import xxhash

from divlab.curate.minhash import (
    MinHashSettings,
    band_keys,
    clusters,
    keep_per_cluster,
    linked_pairs,
    normalise,
    settings_for,
    signatures,
    unique_pairs,
    verified,
)
from divlab.curate.records import (
    Batch,
    CorpusFile,
    check_readable,
    corpus_files,
    fingerprint,
    parse,
    read_batches,
    write_kept,
)
from divlab.errors import ConfigError, DataError
from divlab.io import atomic_directory, atomic_file, read_json, write_json, write_table
from divlab.optional import require_ray
from divlab.progress import counter

# records per batch: small enough that two workers share even a small corpus, large enough
# that a batch's fixed costs (spill files, inter-process copy) stay under 1 %
BATCH_RECORDS = 2_000
SMALL_CORPUS_BYTES = 32 << 20  # below this a local run signs in one process (see dedup_corpus)
KEEP_RULES = {
    "first": "the first document of its cluster in reading order",
    "longest": "the longest document of its cluster (ties: the first in reading order)",
}


@dataclass(frozen=True)
class _Signer:
    """What a worker needs to sign a batch (picklable)."""

    method: str
    settings: MinHashSettings
    text_field: str
    bands: int  # settings.band_shape(), resolved once here: a worker then never imports
    rows: int  # datasketch for the optimiser (0.4 s per worker start)

    def __call__(self, batch: Batch) -> dict:
        texts, bad, reasons = parse(batch, self.text_field)
        if self.method == "exact":
            digests = [xxhash.xxh3_64_intdigest(normalise(t).encode("utf-8")) for t in texts]
            keys = np.array(digests, dtype=np.uint64).reshape(1, -1)
        else:
            keys = band_keys(signatures(texts, self.settings), self.bands, self.rows)
        return {
            "keys": keys,
            "lengths": np.array([len(t) for t in texts], dtype=np.int64),
            "bad": bad,
            "reasons": np.array(reasons, dtype=str),
            "lines": batch.line_numbers,
        }


@dataclass
class _Chunk:
    file: int
    first: int
    size: int
    path: Path  # the .npz of lengths, bad records and line numbers; keys beside it


def _check_out(inputs, out: Path, overwrite: bool) -> None:
    target = out.resolve()
    for path in [inputs] if isinstance(inputs, str | Path) else inputs:
        source = Path(path).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise ConfigError(
                f"--out {out} must not be the input, inside it, or hold it (--overwrite would "
                "replace the input)"
            )
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists; choose another --out or pass --overwrite")


def _work_folder(out: Path, manifest: dict) -> Path:
    """``.<OUT>.work`` beside ``out``, kept when it was made for this input and these
    settings (a resumed run), emptied otherwise."""
    work = out.parent / f".{out.name}.work"
    marker = work / "manifest.json"
    if work.exists() and (not marker.exists() or read_json(marker) != manifest):
        shutil.rmtree(work)
    (work / "chunks").mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        write_json(marker, manifest)
    return work


def _apply(work: Callable[[Batch], dict], batch: Batch) -> dict:
    return work(batch)


def _in_order(
    jobs: Iterator[Batch], work: Callable[[Batch], dict], workers: int, executor: str
) -> Iterator[tuple[Batch, dict]]:
    """(batch, work(batch)) in the order of ``jobs``, at most 2 x ``workers`` in flight."""
    if executor == "ray":
        ray = require_ray()
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(_apply)
        submit, result = (lambda b: remote.remote(work, b)), ray.get
    elif workers == 1:
        for batch in jobs:
            yield batch, work(batch)
        return
    else:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        submit, result = (lambda b: pool.submit(work, b)), (lambda f: f.result())
    pending: collections.deque = collections.deque()
    try:
        for batch in jobs:
            pending.append((batch, submit(batch)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, result(future)
        while pending:
            done, future = pending.popleft()
            yield done, result(future)
    finally:
        if executor != "ray" and workers > 1:
            pool.shutdown(cancel_futures=True)


def _sign(
    files: list[CorpusFile],
    signer: _Signer,
    work: Path,
    batch_records: int,
    workers: int,
    executor: str,
    skip_bad: bool,
    progress: bool,
) -> list[_Chunk]:
    chunks: list[_Chunk] = []

    def unsigned(advance) -> Iterator[Batch]:
        for batch in read_batches(files, signer.text_field, batch_records):
            path = work / "chunks" / f"{batch.file:05d}-{batch.first:012d}.npz"
            chunks.append(_Chunk(batch.file, batch.first, len(batch), path))
            if path.exists():  # signed before a kill: its completion marker is there
                advance(len(batch))
            else:
                yield batch

    with counter("signing" if progress else None) as advance:
        for batch, signed in _in_order(unsigned(advance), signer, workers, executor):
            path = work / "chunks" / f"{batch.file:05d}-{batch.first:012d}.npz"
            with atomic_file(path.with_suffix(".keys.npy")) as tmp, open(tmp, "wb") as f:
                np.save(f, signed.pop("keys"))
            with atomic_file(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **signed)  # last: the batch's completion marker
            advance(len(batch))
            if len(signed["bad"]) and not skip_bad:
                _refuse_bad(files[batch.file], batch.first, signed)
    for chunk in chunks if not skip_bad else []:  # batches signed by an earlier run
        with np.load(chunk.path) as saved:
            if len(saved["bad"]):
                _refuse_bad(files[chunk.file], chunk.first, dict(saved))
    return chunks


def _refuse_bad(f: CorpusFile, first: int, signed: dict) -> None:
    i, why = int(signed["bad"][0]), str(signed["reasons"][0])
    where = f"line {int(signed['lines'][i])}" if len(signed["lines"]) else f"row {first + i}"
    raise DataError(
        f"{f.path}: {len(signed['bad'])} bad record(s) in records {first:,}-"
        f"{first + len(signed['lengths']) - 1:,} (first: {where}: {why}); fix them, or pass "
        "--skip-bad to drop them (they are then listed in curation/removed.parquet)"
    )


@dataclass
class _Index:
    """Where each document of the corpus comes from, from the spilled batches."""

    n: int
    file_of: np.ndarray
    record_of: np.ndarray
    lines: np.ndarray  # JSONL line number, -1 for table rows
    lengths: np.ndarray
    bad: np.ndarray  # bool
    reasons: dict[int, str]


def _index(parts: Iterable[tuple[int, int, dict]]) -> _Index:
    """The corpus' _Index from its batches in reading order: (file, first record, facts)
    with the facts a signer returns (``lengths``, ``bad``, ``reasons``, ``lines``)."""
    files, records, lines, lengths, bad, reasons, start = [], [], [], [], [], {}, 0
    for file, first, facts in parts:
        size = len(facts["lengths"])
        files.append(np.full(size, file))
        records.append(first + np.arange(size))
        lines.append(facts["lines"] if len(facts["lines"]) else np.full(size, -1))
        lengths.append(facts["lengths"])
        is_bad = np.zeros(size, dtype=bool)
        is_bad[facts["bad"]] = True
        bad.append(is_bad)
        where = (start + np.asarray(facts["bad"], dtype=np.int64)).tolist()
        reasons.update(zip(where, [str(r) for r in facts["reasons"]], strict=True))
        start += size

    def joined(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)

    return _Index(
        start, joined(files, np.int64), joined(records, np.int64), joined(lines, np.int64),
        joined(lengths, np.int64), joined(bad, bool), reasons,
    )  # fmt: skip


def _spilled(chunks: list[_Chunk]) -> Iterator[tuple[int, int, dict]]:
    for chunk in chunks:
        with np.load(chunk.path) as saved:
            yield chunk.file, chunk.first, dict(saved)


def _locations(files: list[CorpusFile], index: _Index, gone: np.ndarray) -> dict:
    """The removed list's columns that say where each removed document was, and why a
    bad record was removed (``reason``: None for the others)."""
    names = np.array([str(f.relative) for f in files], dtype=object)
    lines = index.lines[gone]
    return {
        "doc_index": gone.astype(np.int64),
        "file": names[index.file_of[gone]].tolist(),
        "record": index.record_of[gone],
        "line": pa.array(lines, mask=lines < 0),
        "reason": [
            f"bad record: {index.reasons[i]}" if index.bad[i] else None for i in gone.tolist()
        ],
    }


def _link(chunks: list[_Chunk], index: _Index) -> np.ndarray:
    """Candidate pairs, band by band from the memory-mapped spills."""
    if not chunks:
        return np.empty((0, 2), dtype=np.int64)
    paths = [c.path.with_suffix(".keys.npy") for c in chunks]
    bands = np.load(paths[0], mmap_mode="r").shape[0]
    good = np.flatnonzero(~index.bad)
    edges = []
    for band in range(bands):
        # one spill open at a time (a copy of its row; the map closes at once): a corpus
        # of thousands of batches must not exhaust the open-file limit
        column = np.concatenate([np.array(np.load(p, mmap_mode="r")[band]) for p in paths])
        edges.append(linked_pairs(column[good], good))
    return unique_pairs(edges)


def _texts_of(
    files: list[CorpusFile], wanted: np.ndarray, text_field: str, batch_records: int
) -> dict[int, str]:
    """The texts of the documents ``wanted`` (sorted global indices), by re-reading."""
    texts, start = {}, 0
    for batch in read_batches(files, text_field, batch_records):
        lo, hi = np.searchsorted(wanted, [start, start + len(batch)])
        if hi > lo:
            parsed = parse(batch, text_field)[0]
            texts.update({int(i): parsed[int(i) - start] for i in wanted[lo:hi]})
        start += len(batch)
    return texts


def dedup_corpus(
    inputs,
    out: str | Path,
    method: Literal["exact", "near"] = "near",
    settings: MinHashSettings | None = None,
    text_field: str = "text",
    keep: Literal["first", "longest"] = "first",
    verify: bool = False,
    workers: int = 1,
    executor: Literal["local", "ray"] = "local",
    batch_records: int = BATCH_RECORDS,
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Deduplicate the raw corpus ``inputs`` (a file, files or a folder) into the folder
    ``out``; returns the report (also in ``out/curation/report.json``)."""
    timings, started = {}, time.perf_counter()
    out = Path(out)
    files = corpus_files(inputs)
    _check_out(inputs, out, overwrite)
    if method not in ("exact", "near"):
        raise ConfigError(f"unknown dedup method {method!r}; use exact or near")
    if keep not in KEEP_RULES:
        raise ConfigError(f"unknown keep rule {keep!r}; use {' or '.join(KEEP_RULES)}")
    if workers < 1 or batch_records < 1:
        raise ConfigError("workers and batch_records must be >= 1")
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; use local or ray")
    settings = settings or settings_for(is_text=True)
    if settings.shingle == "token":
        raise ConfigError("a raw corpus is text: use char or word shingles, not token")
    bands, rows = settings.band_shape()
    check_readable(files, text_field)
    signer = _Signer(method, settings, text_field, bands, rows)
    manifest = {
        "inputs": fingerprint(files),
        "signer": {"method": method, "settings": asdict(settings), "field": text_field},
        "batch_records": batch_records,
    }
    work = _work_folder(out, manifest)
    # a small corpus is signed here: starting spawned workers (~0.3 s each) and shipping
    # them the batches costs more than it saves (bench_dedup_peers: 10,700 documents of
    # 22 MB, 2 workers 7,146 docs/s against 13,260 in one process; at 43 MB 2 workers win)
    size = sum(sum(s[0] for s in stats) for _, stats in manifest["inputs"])
    signers = 1 if executor == "local" and size < SMALL_CORPUS_BYTES else workers
    chunks = _sign(files, signer, work, batch_records, signers, executor, skip_bad, progress)
    timings["sign"] = time.perf_counter() - started

    index = _index(_spilled(chunks))
    edges = _link(chunks, index)
    candidates = len(edges)
    if verify and method == "near" and len(edges):
        wanted = np.unique(edges)
        edges = verified(edges, _texts_of(files, wanted, text_field, batch_records), settings)
    cluster = clusters(index.n, edges)
    kept = keep_per_cluster(cluster, index.lengths if keep == "longest" else None)
    kept &= ~index.bad
    timings["link_and_cluster"] = time.perf_counter() - started - timings["sign"]

    reason = "exact duplicate" if method == "exact" else "near duplicate"
    removed = _removed_table(files, index, cluster, kept, reason)
    sizes = np.bincount(cluster[~index.bad]) if index.n else np.zeros(1, np.int64)
    used = {"normalised": True}
    if method == "near":
        used = {**asdict(settings), "bands": bands, "rows": rows, "verify": verify}
    report = {
        "method": method,
        "source": [str(f.path) for f in files],
        "format": sorted({f.format for f in files}),
        "text_field": text_field,
        "settings": used,
        "keep_rule": f"{keep}: {KEEP_RULES[keep]}",
        "documents_in": index.n,
        "bad_records": int(index.bad.sum()),
        "bad_reasons": dict(collections.Counter(index.reasons.values())),
        "kept": int(kept.sum()),
        "removed": int((~kept).sum()),
        "candidate_pairs": candidates,
        "duplicate_clusters": int((sizes > 1).sum()),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "workers": signers,
        "workers_asked": workers,
        "executor": executor,
    }
    _write(files, kept, out, removed, report, timings, started, overwrite, progress)
    shutil.rmtree(work, ignore_errors=True)
    return report


def _removed_table(
    files: list[CorpusFile], index: _Index, cluster: np.ndarray, kept: np.ndarray, reason: str
) -> pa.Table:
    gone = np.flatnonzero(~kept)
    representative = np.full(cluster.max() + 1 if len(cluster) else 0, -1, dtype=np.int64)
    representative[cluster[kept]] = np.flatnonzero(kept)
    kept_of = np.where(index.bad[gone], -1, representative[cluster[gone]])
    names = np.array([str(f.relative) for f in files] + [None], dtype=object)
    columns = _locations(files, index, gone)
    columns["reason"] = [r or reason for r in columns["reason"]]
    return pa.table(
        {
            **columns,
            "cluster": np.where(index.bad[gone], -1, cluster[gone]).astype(np.int64),
            "kept_doc_index": kept_of,
            "kept_file": names[np.where(kept_of >= 0, index.file_of[kept_of], -1)].tolist(),
            "kept_record": pa.array(index.record_of[kept_of], mask=kept_of < 0),
        }
    )


def _write(files, kept, out, removed, report, timings, started, overwrite, progress) -> None:
    """The kept records, ``curation/removed.parquet`` and ``curation/report.json``, as one
    folder that appears whole."""
    with atomic_directory(out, overwrite=overwrite) as tmp:
        with counter("writing" if progress else None) as advance:
            write_kept(files, kept, tmp, advance)
        write_table(removed, tmp / "curation" / "removed.parquet")
        timings["write"] = time.perf_counter() - started - sum(timings.values())
        report["seconds"] = {k: round(v, 3) for k, v in timings.items()}
        total = sum(timings.values())
        report["docs_per_second"] = round(report["documents_in"] / total, 1) if total else None
        write_json(tmp / "curation" / "report.json", report)


def filter_corpus(
    inputs,
    out: str | Path,
    select: Callable[[list[str]], tuple[np.ndarray, dict[str, np.ndarray], dict]],
    method: str,
    text_field: str = "text",
    skip_bad: bool = False,
    overwrite: bool = False,
) -> dict:
    """Curate a raw corpus with a method that needs every text at once (a perplexity
    band, SemDeDup, D4): ``select(texts)`` returns (keep mask, per-document columns for
    the removed list, e.g. the perplexity or the cluster, and the method's report
    fields). The outputs are those of :func:`dedup_corpus`."""
    started = time.perf_counter()
    out = Path(out)
    files = corpus_files(inputs)
    _check_out(inputs, out, overwrite)
    check_readable(files, text_field)
    texts, parts = [], []
    for batch in read_batches(files, text_field, BATCH_RECORDS):
        parsed, bad, why = parse(batch, text_field)
        facts = {"lengths": np.array([len(t) for t in parsed]), "bad": bad, "reasons": why,
                 "lines": batch.line_numbers}  # fmt: skip
        if len(bad) and not skip_bad:
            _refuse_bad(files[batch.file], batch.first, facts)
        parts.append((batch.file, batch.first, facts))
        texts.extend(parsed)
    if not texts:
        raise DataError(f"the corpus {', '.join(str(f.path) for f in files)} has no records")
    index = _index(parts)
    good = np.flatnonzero(~index.bad)
    keep_good, columns, fields = select([texts[i] for i in good])
    kept = np.zeros(index.n, dtype=bool)
    kept[good[keep_good]] = True
    gone = np.flatnonzero(~kept)
    position = np.full(index.n, -1)  # a document's place among the good ones
    position[good] = np.arange(len(good))
    removed = _locations(files, index, gone)
    why = columns.pop("reason", np.full(len(good), method))
    removed["reason"] = [
        r or str(why[position[i]]) for r, i in zip(removed["reason"], gone, strict=True)
    ]
    for name, values in columns.items():
        full = np.full(index.n, np.nan if np.asarray(values).dtype.kind == "f" else -1)
        full[good] = values
        removed[name] = pa.array(full[gone], mask=index.bad[gone])
    report = {
        "method": method,
        "source": [str(f.path) for f in files],
        "format": sorted({f.format for f in files}),
        "text_field": text_field,
        **fields,
        "documents_in": index.n,
        "bad_records": int(index.bad.sum()),
        "bad_reasons": dict(collections.Counter(index.reasons.values())),
        "kept": int(kept.sum()),
        "removed": int((~kept).sum()),
    }
    timings = {"select": time.perf_counter() - started}
    _write(files, kept, out, pa.table(removed), report, timings, started, overwrite, False)
    return report
