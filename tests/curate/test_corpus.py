"""Curation of raw corpora, file to file: formats and fields preserved, the removed list
complete, bad records counted, the kept set independent of shards / workers / executor,
resumable after a kill, and equal to the in-memory MinHash-LSH."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from divlab.curate import corpus
from divlab.curate.corpus import dedup_corpus, filter_corpus
from divlab.curate.minhash import MinHashSettings, near_duplicates
from divlab.errors import ConfigError, DataError

SETTINGS = MinHashSettings("word", 3, 64, 0.7)


def _records(n: int = 120, copies: int = 15, seed: int = 0) -> tuple[list[dict], set[int]]:
    """``n`` random-word documents with extra fields, and ``copies`` lightly edited copies
    of earlier ones placed later; returns the records and the copies' positions."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(4000)]
    records = [
        {"id": i, "text": " ".join(rng.choice(vocabulary, 60)), "meta": {"n": i, "tag": "é"}}
        for i in range(n)
    ]
    planted = set()
    for j, source in enumerate(rng.choice(n // 2, copies, replace=False)):
        words = records[source]["text"].split()
        words[int(rng.integers(60))] = "edited"
        position = int(n // 2 + 3 * j + 1)
        records.insert(
            position, {"text": " ".join(words), "id": f"copy{j}", "of": int(source), "x": None}
        )
    planted = {i for i, r in enumerate(records) if str(r["id"]).startswith("copy")}
    return records, planted


def _lines(records) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() for r in records]


def _write_jsonl(path: Path, lines: list[bytes]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    if path.suffix == ".zst":
        with pa.output_stream(str(path), compression="zstd") as sink:
            sink.write(b"".join(line + b"\n" for line in lines))
        return path
    with opener(path, "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))
    return path


def _read_jsonl(path: Path) -> list[bytes]:
    if path.suffix == ".zst":
        data = pa.input_stream(str(path), compression="zstd").read()
    else:
        data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    return data.splitlines()


def _split(lines: list[bytes], folder: Path, parts: int, suffix: str = ".jsonl") -> Path:
    folder.mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(lines)), parts)):
        _write_jsonl(folder / f"part-{i:02d}{suffix}", [lines[j] for j in chunk])
    return folder


def _removed(out: Path) -> pa.Table:
    return pq.read_table(out / "curation" / "removed.parquet")


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_jsonl_in_the_same_jsonl_out_byte_for_byte(tmp_path, suffix):
    records, planted = _records()
    lines = _lines(records)
    source = _split(lines, tmp_path / "in", 2, suffix)
    before = _digest(source)
    report = dedup_corpus(source, tmp_path / "out", settings=SETTINGS)
    reference = near_duplicates([r["text"] for r in records], SETTINGS)
    removed = _removed(tmp_path / "out").to_pandas()
    assert set(removed.doc_index) == set(np.flatnonzero(~reference.keep)) == planted
    # every kept line, byte for byte and in order, in a file of the same name and format
    kept = []
    for i in range(2):
        kept += _read_jsonl(tmp_path / "out" / f"part-{i:02d}{suffix}")
    assert kept == [lines[i] for i in np.flatnonzero(reference.keep)]
    assert report["documents_in"] == len(records) and report["removed"] == len(planted)
    # the removed list: where each removed record was and which kept one it duplicates
    for row in removed.itertuples():
        assert lines[row.doc_index] == _read_jsonl(source / row.file)[row.record]
        assert row.line == row.record + 1 and row.reason == "near duplicate"
        assert reference.cluster[row.kept_doc_index] == reference.cluster[row.doc_index]
        assert records[row.kept_doc_index]["id"] == records[row.doc_index]["of"]  # its source
        kept_lines = _read_jsonl(source / row.kept_file)
        assert kept_lines[row.kept_record] == lines[row.kept_doc_index]
    assert _digest(source) == before  # the input is untouched


def test_parquet_in_parquet_out_with_schema_and_rows(tmp_path):
    records, planted = _records()
    table = pa.table(
        {
            "id": [str(r["id"]) for r in records],
            "text": [r["text"] for r in records],
            "score": np.arange(len(records), dtype=np.float32),
        }
    )
    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(table.slice(0, 70), source / "a.parquet", compression="snappy")
    pq.write_table(table.slice(70), source / "b.parquet", compression="snappy")
    dedup_corpus(source, tmp_path / "out", settings=SETTINGS, batch_records=16)
    keep = np.ones(len(records), dtype=bool)
    keep[list(planted)] = False
    out = pa.concat_tables(pq.read_table(tmp_path / "out" / n) for n in ("a.parquet", "b.parquet"))
    assert out.schema == table.schema and out.equals(table.filter(pa.array(keep)))
    meta = pq.ParquetFile(tmp_path / "out" / "a.parquet").metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    assert set(_removed(tmp_path / "out").column("doc_index").to_pylist()) == planted


def test_save_to_disk_folder_round_trip(tmp_path):
    datasets = pytest.importorskip("datasets")
    records, planted = _records(60, 6)
    rows = {"text": [r["text"] for r in records], "id": [str(r["id"]) for r in records]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "hf"))
    report = dedup_corpus(tmp_path / "hf", tmp_path / "out", settings=SETTINGS)
    kept = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    assert kept["id"] == [i for n, i in enumerate(rows["id"]) if n not in planted]
    assert report["format"] == ["hf"] and report["removed"] == len(planted)


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_the_kept_set_does_not_depend_on_shards_batches_or_workers(tmp_path, parts, monkeypatch):
    records, planted = _records()
    lines = _lines(records)
    source = _split(lines, tmp_path / "in", parts)
    workers, batch = (2, 9) if parts == 3 else (1, 1000 if parts == 1 else 5)
    monkeypatch.setattr(corpus, "SMALL_CORPUS_BYTES", 0)  # a real pool, however small
    report = dedup_corpus(source, tmp_path / "out", settings=SETTINGS, workers=workers,
                          batch_records=batch)  # fmt: skip
    assert report["workers"] == workers
    assert set(_removed(tmp_path / "out").column("doc_index").to_pylist()) == planted


def test_a_small_corpus_is_signed_without_a_pool(tmp_path):
    source = _write_jsonl(tmp_path / "c.jsonl", _lines(_records()[0]))
    report = dedup_corpus(source, tmp_path / "out", settings=SETTINGS, workers=2)
    assert (report["workers"], report["workers_asked"]) == (1, 2)


def test_exact_dedup_and_the_longest_rule(tmp_path):
    texts = ["Hello, World!", "hello world", "other text", "hello   WORLD.", "x"]
    source = _write_jsonl(tmp_path / "c.jsonl", _lines({"text": t} for t in texts))
    report = dedup_corpus(source, tmp_path / "first", method="exact")
    assert _removed(tmp_path / "first").column("doc_index").to_pylist() == [1, 3]
    assert report["keep_rule"].startswith("first")
    dedup_corpus(source, tmp_path / "longest", method="exact", keep="longest")
    removed = _removed(tmp_path / "longest").to_pandas()
    assert removed.doc_index.tolist() == [0, 1] and set(removed.kept_doc_index) == {3}
    assert removed.reason.tolist() == ["exact duplicate"] * 2


def test_bad_records_are_counted_and_refused_without_skip_bad(tmp_path):
    good = _lines({"text": f"document number {i} " * 5} for i in range(6))
    bad = [b"{not json", b'{"title": "no text field"}', b'{"text": "caf\xe9"}', b'{"text": 3}',
           b"[1, 2]"]  # fmt: skip
    lines = good[:2] + bad + good[2:]
    source = _write_jsonl(tmp_path / "c.jsonl", lines)
    with pytest.raises(DataError, match=r"5 bad record.*line 3: not valid JSON.*--skip-bad"):
        dedup_corpus(source, tmp_path / "out", method="exact")
    assert not (tmp_path / "out").exists()
    report = dedup_corpus(source, tmp_path / "out", method="exact", skip_bad=True)
    assert report["bad_records"] == 5 and report["kept"] == 6
    assert report["bad_reasons"] == {
        "not valid JSON": 1, "no 'text' field": 1, "not UTF-8": 1,
        "'text' holds int, not text": 1, "not a JSON object": 1,
    }  # fmt: skip
    removed = _removed(tmp_path / "out").to_pandas()
    assert removed.line.tolist() == [3, 4, 5, 6, 7]
    assert all(r.startswith("bad record: ") for r in removed.reason)
    assert (removed.kept_doc_index == -1).all()
    assert _read_jsonl(tmp_path / "out" / "c.jsonl") == good


def test_a_wrong_field_or_input_is_refused_before_any_work(tmp_path):
    source = _write_jsonl(tmp_path / "c.jsonl", _lines([{"body": "a b c"}]))
    with pytest.raises(DataError, match=r"no 'text' field \(it has 'body'\).*--field"):
        dedup_corpus(source, tmp_path / "out")
    assert dedup_corpus(source, tmp_path / "out", text_field="body")["kept"] == 1
    with pytest.raises(DataError, match="already exists"):
        dedup_corpus(source, tmp_path / "out", text_field="body")
    folder = tmp_path / "folder"
    folder.mkdir()
    _write_jsonl(folder / "c.jsonl", _lines([{"text": "a b c"}]))
    with pytest.raises(ConfigError, match="must not be the input"):
        dedup_corpus(folder, folder / "inside")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a corpus file"):
        dedup_corpus(tmp_path / "notes.txt", tmp_path / "o2")
    with pytest.raises(ConfigError, match="not token"):
        dedup_corpus(source, tmp_path / "o3", settings=MinHashSettings("token", 3))


class Killed(BaseException):
    """A kill in the middle of signing (not an Exception: nothing may catch it)."""


def test_a_killed_run_resumes_at_the_first_unsigned_batch(tmp_path, monkeypatch):
    records, planted = _records()
    source = _write_jsonl(tmp_path / "c.jsonl", _lines(records))
    calls, deaths = [], []
    sign = corpus._Signer.__call__

    def dies_on_the_fourth(self, batch):
        calls.append(batch.first)
        if len(calls) == 4 and not deaths:
            deaths.append(batch.first)
            raise Killed
        return sign(self, batch)

    monkeypatch.setattr(corpus._Signer, "__call__", dies_on_the_fourth)
    with pytest.raises(Killed):
        dedup_corpus(source, tmp_path / "out", settings=SETTINGS, batch_records=20)
    assert not (tmp_path / "out").exists()
    spilled = sorted((tmp_path / ".out.work" / "chunks").glob("*.npz"))
    assert len(spilled) == 3
    calls.clear()
    report = dedup_corpus(source, tmp_path / "out", settings=SETTINGS, batch_records=20)
    assert calls == list(range(60, len(records), 20))  # only the unsigned batches
    assert set(_removed(tmp_path / "out").column("doc_index").to_pylist()) == planted
    assert report["removed"] == len(planted) and not (tmp_path / ".out.work").exists()


def test_verify_drops_candidate_pairs_below_the_threshold(tmp_path):
    records, _ = _records(80, 8)
    loose = MinHashSettings("word", 3, 64, 0.7, bands=32, rows=2)  # many false candidates
    source = _write_jsonl(tmp_path / "c.jsonl", _lines(records))
    report = dedup_corpus(source, tmp_path / "out", settings=loose, verify=True)
    reference = near_duplicates([r["text"] for r in records], loose, verify=True)
    assert set(_removed(tmp_path / "out").column("doc_index").to_pylist()) == set(
        np.flatnonzero(~reference.keep)
    )
    assert report["candidate_pairs"] == reference.candidates


def test_filter_corpus_lists_what_select_removed(tmp_path):
    lines = _lines({"text": "x" * n, "n": n} for n in range(1, 11))
    source = _write_jsonl(tmp_path / "c.jsonl.gz", lines)

    def shortest_half(texts):
        lengths = np.array([len(t) for t in texts], dtype=float)
        return lengths > 5, {"length": lengths}, {"settings": {"rule": "length > 5"}}

    report = filter_corpus(source, tmp_path / "out", shortest_half, "length")
    assert _read_jsonl(tmp_path / "out" / "c.jsonl.gz") == lines[5:]
    removed = _removed(tmp_path / "out").to_pandas()
    assert removed.length.tolist() == [1, 2, 3, 4, 5] and report["removed"] == 5


@pytest.mark.slow
def test_ray_keeps_the_same_documents_as_local(tmp_path):
    ray = pytest.importorskip("ray")
    records, planted = _records()
    source = _split(_lines(records), tmp_path / "in", 3)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        dedup_corpus(source, tmp_path / "ray", settings=SETTINGS, executor="ray", workers=2,
                     batch_records=25)  # fmt: skip
    finally:
        ray.shutdown()
    assert set(_removed(tmp_path / "ray").column("doc_index").to_pylist()) == planted


def test_line_endings_a_bom_and_no_final_newline_survive(tmp_path):
    body = '\ufeff{"text": "alpha beta gamma delta"}\r\n\n{"text": "alpha beta gamma delta"}\r\n'
    body += '{"text": "something else entirely"}'  # no final newline
    (tmp_path / "c.jsonl").write_bytes(body.encode())
    report = dedup_corpus(tmp_path / "c.jsonl", tmp_path / "out", method="exact")
    assert report["documents_in"] == 3 and report["bad_records"] == 0
    written = (tmp_path / "out" / "c.jsonl").read_bytes()
    assert written == ('\ufeff{"text": "alpha beta gamma delta"}\r\n'
                       '{"text": "something else entirely"}\n').encode()  # fmt: skip
    assert _removed(tmp_path / "out").column("line").to_pylist() == [3]


def test_parquet_row_groups_and_nulls_are_kept_apart(tmp_path):
    texts = [f"doc {i} " * 20 for i in range(50)] + ["doc 1 " * 20, None]
    table = pa.table({"text": texts, "n": list(range(52))})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=20)
    with pytest.raises(DataError, match=r"row 51: no 'text' value"):
        dedup_corpus(tmp_path / "t.parquet", tmp_path / "out", method="exact")
    report = dedup_corpus(tmp_path / "t.parquet", tmp_path / "out", method="exact", skip_bad=True)
    assert report["removed"] == 2 and report["bad_records"] == 1
    out = pq.ParquetFile(tmp_path / "out" / "t.parquet")
    assert out.metadata.num_row_groups == 3  # one row group out per row group in
    assert out.read().column("n").to_pylist() == list(range(50))


def test_metadata_json_in_a_folder_is_not_read_as_a_corpus(tmp_path):
    folder = tmp_path / "hf-export"
    folder.mkdir()
    _write_jsonl(folder / "a.jsonl", _lines([{"text": "one two three"}, {"text": "four"}]))
    (folder / "dataset_info.json").write_text('{\n  "citation": ""\n}\n')
    report = dedup_corpus(folder, tmp_path / "out", method="exact")
    assert report["source"] == [str(folder / "a.jsonl")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jsonl", "curation"]
    (tmp_path / "array.json").write_text('[{"text": "a"}]\n')
    with pytest.raises(DataError, match=r"JSON array.*JSON Lines"):
        dedup_corpus(tmp_path / "array.json", tmp_path / "o2")


def test_an_output_folder_that_holds_the_input_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write_jsonl(data / "raw.jsonl", _lines([{"text": "a b c"}]))
    (data / "notes.md").write_text("mine")
    with pytest.raises(ConfigError, match="must not be the input, inside it, or hold it"):
        dedup_corpus(data / "raw.jsonl", data, overwrite=True)
    assert (data / "notes.md").read_text() == "mine"


def test_thousands_of_batches_stay_within_the_open_file_limit(tmp_path):
    """Linking reads each batch's spill in turn: 300 batches under a limit of 64 files."""
    resource = pytest.importorskip("resource")
    records, planted = _records(280, 20)
    source = _write_jsonl(tmp_path / "c.jsonl", _lines(records))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        dedup_corpus(source, tmp_path / "out", settings=SETTINGS, batch_records=1)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert set(_removed(tmp_path / "out").column("doc_index").to_pylist()) == planted


def test_the_cli_never_takes_an_existing_input_for_the_old_positional_out(tmp_path):
    from typer.testing import CliRunner

    from divlab.cli import app

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _write_jsonl(tmp_path / name / "c.jsonl", _lines([{"text": f"{name} text"}]))
    args = ["curate", "dedup", str(tmp_path / "a"), str(tmp_path / "b"), "--overwrite"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError)  # exit code 2 from `divlab`
    assert "exists, so it is read as an input; give the output folder as --out OUT" in str(
        result.exception
    )
    assert (tmp_path / "b" / "c.jsonl").exists()
    args = ["curate", "dedup", str(tmp_path / "a"), str(tmp_path / "new"), "--method", "exact"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and (tmp_path / "new" / "c.jsonl").exists()
    # --preset (a MinHash preset here, a model preset in train) is now --minhash-preset
    for flag in ("--minhash-preset", "--preset"):
        args = ["curate", "dedup", str(tmp_path / "a"), "-o", str(tmp_path / flag), flag,
                "slimpajama"]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / flag / "curation" / "report.json").read_text())
        assert (report["settings"]["bands"], report["settings"]["rows"]) == (9, 13)
    assert "--preset is deprecated; use --minhash-preset" in " ".join(result.output.split())
