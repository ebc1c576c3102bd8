"""dedup_dataset / `divlab curate dedup`: a new folder with the planted copies removed,
the input untouched, and a report of what was removed and why."""

from __future__ import annotations

import hashlib
import json

import pytest

from divlab.curate.dedup import dedup_dataset, exact_clusters
from divlab.data.ginc import GincSpec, generate
from divlab.data.store import open_dataset
from divlab.errors import ConfigError

from ..test_cli import run_cli


def _ginc(path, edit_rate: float):
    spec = {
        "family": {"vocab_size": 50, "seed": 0},
        "concepts": {"plan": "eval", "n_eval": 3},
        "seed": 4,
        "splits": {"train": {"n_docs": 300, "doc_length": 256, "oracle": False,
                             "duplicates": {"fraction": 0.25, "edit_rate": edit_rate}},
                   "eval": {"n_docs": 8, "doc_length": 256, "oracle": False}},
        "prompts": None,
    }  # fmt: skip
    return generate(GincSpec.from_dict(spec), path)


def _fingerprint(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_exact_dedup_removes_exactly_the_planted_copies(tmp_path):
    source = _ginc(tmp_path / "in", 0.0)
    before = _fingerprint(source)
    report = dedup_dataset(source, tmp_path / "out", method="exact")
    assert _fingerprint(source) == before  # never modified in place
    table = open_dataset(source).table("train").to_pandas()
    copies = table[table.duplicate_of >= 0]
    assert report["removed"] == len(copies) and report["kept"] == len(table) - len(copies)
    curated = open_dataset(tmp_path / "out")
    kept = curated.table("train").to_pandas()
    sources = table.duplicate_of.where(table.duplicate_of >= 0, table.doc_id)
    group = dict(zip(table.doc_id, sources, strict=True))
    kept_groups = [group[d] for d in kept.doc_id]
    assert sorted(kept_groups) == sorted(set(group.values()))  # one document per group
    assert curated.summary["splits"]["train"]["n_docs"] == len(kept)
    assert curated.summary["curation"][0]["method"] == "exact"
    assert curated.table("eval").num_rows == 8  # other splits copied unchanged
    removed = curated.path / "curation" / "removed.parquet"
    import pandas as pd

    removed = pd.read_parquet(removed)
    # every removed document names the kept document it duplicates: its source or a twin
    source_of = dict(zip(table.doc_id, table.duplicate_of, strict=True))
    for row in removed.itertuples():
        group = {row.doc_id, source_of[row.doc_id]} - {-1}
        assert row.kept_doc_id in group or source_of.get(row.kept_doc_id) in group


def test_near_dedup_on_ginc_and_the_cli(tmp_path):
    source = _ginc(tmp_path / "in", 0.01)
    exact = dedup_dataset(source, tmp_path / "exact", method="exact")
    table = open_dataset(source).table("train").to_pandas()
    unedited = ((table.duplicate_of >= 0) & (table.n_duplicate_edits == 0)).sum()
    assert exact["removed"] == unedited  # only copies that drew no substitution
    result = run_cli("curate", "dedup", str(source), "--out", str(tmp_path / "near"), "--verify")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "near" / "curation" / "report.json").read_text())
    planted = (table.duplicate_of >= 0).sum()
    assert report["settings"]["shingle"] == "token" and report["settings"]["verify"]
    assert abs(report["removed"] - planted) <= 0.05 * planted
    assert f"removed {report['removed']:,}" in " ".join(result.stdout.split())


def test_text_data_and_bad_input(tmp_path):
    from divlab.data.text import prepare_text

    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
    ]
    docs = [" ".join(words[i:] + words[:i]) * 3 for i in range(len(words))]
    rows = [*docs, docs[0].upper() + "!", docs[1]]  # a normalised copy and an exact one
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in rows) + "\n")
    data = prepare_text(corpus, tmp_path / "text", vocab_size=300, eval_docs=0)
    report = dedup_dataset(data, tmp_path / "dedup", method="exact")
    assert report["removed"] == 2 and report["kept"] == len(docs)
    assert len(set(exact_clusters(rows))) == len(docs)
    with pytest.raises(ConfigError, match="must differ from the input"):
        dedup_dataset(data, data)
    # the output folder as a second argument: the old spelling of --out, still working
    result = run_cli("curate", "dedup", str(data), str(tmp_path / "x"), "--shingle", "token")
    assert result.returncode == 2 and "not token shingles" in result.stderr
    assert "second argument is deprecated; use --out OUT" in " ".join(result.stderr.split())
    # after a data set the second argument can only be OUT: a re-run with --overwrite works
    for extra in ([], ["--overwrite"]):
        result = run_cli("curate", "dedup", str(data), str(tmp_path / "y"), "--method", "exact",
                         *extra)  # fmt: skip
        assert result.returncode == 0, result.stderr
    shown = run_cli("data", "info", str(tmp_path / "y"))
    assert shown.returncode == 0, shown.stderr
    assert "curation 1: exact on train: docs 14 -> 12" in " ".join(shown.stdout.split())
    summary = json.loads(run_cli("data", "info", str(tmp_path / "y"), "--json").stdout)
    assert summary["splits"]["train"]["mean_doc_tokens"] == pytest.approx(
        summary["splits"]["train"]["n_tokens"] / 12
    )
    # a held-out set holds only eval: curation reads its only split by default
    held = prepare_text(corpus, tmp_path / "held", tokenizer=data / "tokenizer", eval_fraction=1.0)
    assert dedup_dataset(held, tmp_path / "held-dedup", method="exact")["split"] == "eval"


def test_a_curated_ginc_set_tells_the_truth_about_itself(tmp_path):
    """After dedup the curated split's summary is recomputed from what it holds (noisy
    documents, duplicates, oracle NLL, documents per concept, ground truth), the step
    records its before and after, and ginc info prints them."""
    import numpy as np

    from divlab.data.ginc.truth import ground_truth_diversity

    spec = {
        "family": {"vocab_size": 50, "seed": 0},
        "concepts": {"plan": "eval", "n_eval": 3},
        "seed": 5,
        "splits": {"train": {"n_docs": 120, "doc_length": 64,
                             "noise": {"fraction": 0.3, "rate": 0.1},
                             "duplicates": {"fraction": 0.25, "edit_rate": 0.0}},
                   "eval": {"n_docs": 8, "doc_length": 64}},
        "prompts": None,
    }  # fmt: skip
    source = generate(GincSpec.from_dict(spec), tmp_path / "in")
    dedup_dataset(source, tmp_path / "out", method="exact")
    curated = open_dataset(tmp_path / "out")
    table = curated.table("train").to_pandas()
    summary = curated.summary["splits"]["train"]
    assert summary["n_docs"] == len(table) < 120
    assert summary["noise"]["docs"] == int(table.noise.sum())
    assert summary["noise"]["tokens"] == int(table.n_noise_tokens.sum())
    assert summary["duplicates"]["docs"] == int((table.duplicate_of >= 0).sum())
    assert summary["duplicates"]["with_source"] == 0  # exact copies: one of each group kept
    assert summary["oracle_nll"] == pytest.approx(table.oracle_nll.mean())
    counts = [int((table.concept == c).sum()) for c in curated.concept_ids]
    assert summary["concept_counts"] == counts
    expected = ground_truth_diversity(
        curated.family, curated.concept_ids, np.array(counts) / sum(counts)
    )
    assert summary["ground_truth_diversity"] == pytest.approx(expected)
    original = open_dataset(source).summary["splits"]["train"]
    step = curated.summary["curation"][0]
    assert step["before"]["n_docs"] == 120 and step["after"]["n_docs"] == len(table)
    assert step["before"]["duplicates"]["docs"] == original["duplicates"]["docs"]
    assert step["after"]["oracle_nll"] == pytest.approx(summary["oracle_nll"])
    shown = run_cli("ginc", "info", str(curated.path))
    assert shown.returncode == 0, shown.stderr
    assert f"curation 1: exact on train: docs 120 -> {len(table)}" in shown.stdout
