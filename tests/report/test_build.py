"""build_report on a synthetic experiment folder: files, self-containment, headline numbers."""

import json
import math
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from divlab.errors import DataError
from divlab.experiments import build_report
from divlab.report import correlation
from tests.report.synthetic import make_synthetic_experiment

METRICS = ["loss", "icl_accuracy"]  # token_match, also requested, is all null
FIGURES = [
    *(f"{plot}_{m}" for plot in "ABDFG" for m in METRICS),
    "C_diversity_alignment",
    "E_ground_truth",
    "learning_curves",
    "speed",
    "M_decision_accuracy",  # which measure tracks performance (diversity and the rivals)
    "M_measures_vs_performance",
]


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_report_files_exist(synthetic_report):
    _, index = synthetic_report
    folder = index.parent
    assert index.name == "index.html" and index.exists()
    assert (folder / "summary.json").exists() and (folder / "stats.parquet").exists()
    for stem in FIGURES:
        assert (folder / "figures" / f"{stem}.png").stat().st_size > 1000, stem
        assert (folder / "figures" / f"{stem}.svg").stat().st_size > 1000, stem
    assert not list(folder.glob("figures/*token_match*"))
    assert not list(folder.glob("figures/*gap*"))  # in the table, but not requested


def test_html_is_self_contained_and_escaped(synthetic_report):
    _, index = synthetic_report
    text = index.read_text()
    parser = _Images()
    parser.feed(text)
    assert len(parser.sources) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in parser.sources)
    # nothing to fetch: no scripts, stylesheets, fonts or remote URLs
    assert not parser.tags & {"script", "link", "iframe", "object"}
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", text)
    # the spec's "<script>" note arrives as text
    assert "&lt;script&gt;alert(" in text


def test_headline_numbers_equal_a_direct_computation(synthetic_report):
    experiment, index = synthetic_report
    results = pd.read_parquet(experiment / "results.parquet")
    summary = json.loads((index.parent / "summary.json").read_text())
    assert set(summary["metrics"]) == set(METRICS)
    assert (summary["n_conditions"], summary["n_seeds"], summary["n_runs"]) == (7, 2, 14)
    for name in METRICS:
        direct = correlation(results.diversity, results[name])
        headline = summary["metrics"][name]
        assert headline["n"] == direct["n"] == 14
        assert headline["spearman_rho"] == pytest.approx(direct["spearman_rho"])
        assert headline["spearman_p"] == pytest.approx(direct["spearman_p"])
        assert headline["spearman_ci"] == pytest.approx(
            [direct["spearman_ci_low"], direct["spearman_ci_high"]]
        )
        assert headline["pearson_r"] == pytest.approx(direct["pearson_r"])
    # the planted relation: more diverse data, lower loss
    loss = summary["metrics"]["loss"]
    assert loss["spearman_rho"] < -0.8 and loss["spearman_ci"][1] < 0
    assert loss["effect_size"]["low_condition"] == "k=1"
    assert loss["effect_size"]["high_condition"] in {"k=8", "k=4+4"}
    assert loss["effect_size"]["difference"] < 0
    # the page shows the same text under a findable id
    html = index.read_text()
    shown = re.search(r"id='headline-spearman-loss'>([^<]*)<", html).group(1)
    assert shown == loss["headline"]


def test_stats_parquet_is_the_correlation_table(synthetic_report):
    experiment, index = synthetic_report
    table = pd.read_parquet(index.parent / "stats.parquet")
    assert set(table["plot"]) == set("ABCDEFG")
    row = table[(table["plot"] == "A") & (table.y == "loss") & (table.level == "runs")].iloc[0]
    summary = json.loads((index.parent / "summary.json").read_text())
    assert row.spearman_rho == pytest.approx(summary["metrics"]["loss"]["spearman_rho"])
    # plot D: 3 added conditions x 2 seeds, measured against their base conditions
    d = table[(table["plot"] == "D") & (table.y == "loss") & (table.level == "runs")].iloc[0]
    assert d.n == 6
    # plot G: the same runs, gained energy distance (recomputed from results.parquet)
    g = table[(table["plot"] == "G") & (table.y == "loss") & (table.level == "runs")].iloc[0]
    results = pd.read_parquet(experiment / "results.parquet")
    means = results.groupby("condition")[["energy_distance", "loss"]].mean()
    added = results[results.plan == "added"]
    x = added.energy_distance.to_numpy() - means.energy_distance[added.base_condition].to_numpy()
    y = added.loss.to_numpy() - means.loss[added.base_condition].to_numpy()
    assert g.n == 6 and g.spearman_rho == pytest.approx(correlation(x, y)["spearman_rho"])


def test_metric_table_holds_the_headline_numbers(synthetic_report):
    """The per-metric statistics are a table, each headline in its row, equal to
    summary.json's; Hedges' g is withheld with 2 seeds per arm and the reason given."""
    _, index = synthetic_report
    html = index.read_text()
    summary = json.loads((index.parent / "summary.json").read_text())
    table_html = re.search(r"<table id='metric-table'>(.*?)</table>", html, re.S).group(1)
    for name, headline in summary["metrics"].items():
        assert f"id='headline-spearman-{name}'>{headline['headline']}<" in table_html
    assert "withheld" in table_html and "effect-g-" not in table_html


def test_all_null_metric_is_skipped_and_said(synthetic_report):
    _, index = synthetic_report
    summary = json.loads((index.parent / "summary.json").read_text())
    assert "token_match" not in summary["metrics"]
    assert any("token_match" in note for note in summary["skipped"])
    assert "token_match" in index.read_text()  # the report says it was left out


def test_sparse_experiment_skips_what_it_lacks(tmp_path):
    """No curves, no alignment, no ground truth, an all-null requested metric: the report
    still builds, with only the figures the data support, and a rebuild replaces it."""
    experiment = make_synthetic_experiment(tmp_path / "sparse")
    (experiment / "curves.parquet").unlink()
    results = pd.read_parquet(experiment / "results.parquet")
    for column in results.columns:
        if column.startswith(("alignment", "energy_distance", "gt_")) or column == "icl_accuracy":
            results[column] = float("nan")
    results.to_parquet(experiment / "results.parquet")
    info = json.loads((experiment / "experiment.json").read_text())
    info["metrics"] = ["loss", "icl_accuracy"]
    (experiment / "experiment.json").write_text(json.dumps(info))

    index = build_report(experiment, out=tmp_path / "out")
    index = build_report(experiment, out=tmp_path / "out")  # replaces its own report
    figures = sorted(p.stem for p in (index.parent / "figures").glob("*.png"))
    assert figures == ["A_loss", "M_decision_accuracy", "M_measures_vs_performance", "speed"]
    summary = json.loads((index.parent / "summary.json").read_text())
    assert list(summary["metrics"]) == ["loss"]
    notes = " ".join(summary["skipped"])
    assert "icl_accuracy" in notes and "alignment" in notes and "curves.parquet" in notes
    assert "gt_effective_concepts" in notes
    assert math.isfinite(summary["metrics"]["loss"]["spearman_rho"])


def test_bad_folders_raise_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"not an experiment folder \(no spec\.json\)"):
        build_report(tmp_path)
    experiment = make_synthetic_experiment(tmp_path / "exp")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a divlab report"):
        build_report(experiment, out=tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").exists()
