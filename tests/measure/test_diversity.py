"""Diversity and alignment coefficients: batches, bounds, CIs and bad input."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from divlab.cli import app
from divlab.errors import ConfigError, DataError
from divlab.measure import (
    DiversitySettings,
    alignment,
    bounds,
    diversity_coefficient,
    load_probe,
    make_batches,
    normalized_diversity,
    probe_documents,
)
from divlab.train import TrainSpec, train

SETTINGS = DiversitySettings(n_batches=5, batch_size=8, seq_len=64, bootstrap=200)


@pytest.fixture(scope="module")
def probe(five_concepts, tmp_path_factory):
    """A tiny probe trained on the five-concept family (the natural GINC probe)."""
    out = tmp_path_factory.mktemp("probe")
    fields = {"data": str(five_concepts), "token_budget": 16384, "seq_len": 64,
              "batch_tokens": 1024, "optimizer": {"lr": 1e-2}, "eval_docs": 4}  # fmt: skip
    train(TrainSpec.from_dict(fields), out)
    return load_probe(out / "model", device="cpu")


def test_batches_are_disjoint_and_described():
    documents = [np.arange(i * 100, i * 100 + 100) for i in range(40)]  # every token unique
    blocks = make_batches(documents, 6, 4, 16, "blocks", seed=1)
    assert len(np.unique(blocks.input_ids)) == blocks.input_ids.size
    assert blocks.describe()["tokens_per_batch"] == 64
    docs = make_batches(documents, 5, 8, 16, "documents", seed=1)
    firsts = docs.input_ids[:, :, 0].ravel()
    assert len(np.unique(firsts)) == 40 and (firsts % 100 == 0).all()  # 40 distinct starts


def test_bounds_bracket_real_data_and_the_ci_covers_the_estimate(five_concepts, probe):
    result = diversity_coefficient(five_concepts, probe, SETTINGS)
    low, high = result["ci95"]
    assert low <= result["diversity"] <= high
    assert result["paper_ci95"] == pytest.approx(1.96 * result["std"] / np.sqrt(10))
    assert result["probe"] == probe.source and result["batches"]["n_batches"] == 5
    limits = bounds(probe, np.arange(1, 50), SETTINGS)
    assert limits["lower"] < result["diversity"] < limits["upper"]
    assert 0 < normalized_diversity(result["diversity"], limits["lower"], limits["upper"]) < 1


def test_alignment_prefers_the_same_family_in_align2(five_concepts, probe, tmp_path):
    """align2 (one large batch each) is higher for a data set with itself than with data
    of another GINC family (other emission symbols). align1 is NOT checked that way: it
    averages distances between different batches, so align1(D, D) <= 1 - div(D) and can
    fall below align1(D, D') (measured here: 0.9938 vs 0.9961 with this tiny probe)."""
    from divlab.data.ginc import generate

    from ..conftest import ginc_spec

    family = {"vocab_size": 50, "n_values": 10, "n_slots": 10, "seed": 7}
    other = generate(ginc_spec(n_eval=5, family=family), tmp_path / "family7")
    with_itself = alignment(five_concepts, five_concepts, probe, SETTINGS)
    with_other = alignment(five_concepts, other, probe, SETTINGS)
    assert with_itself["align2"] > with_other["align2"]
    for result in (with_itself, with_other):
        low, high = result["align1_ci95"]
        assert 0 <= low <= result["align1"] <= high <= 1
    # the energy distance takes each set's own spread out: two samples of the same data
    # are at ~0 (the CI covers it). With this tiny probe and 5 batches it does not
    # separate the other family either (measured -0.0008 [-0.0055, 0.0069] with itself,
    # -0.00002 [-0.0032, 0.0043] with the other family): no claim is made on that here.
    assert with_itself["energy_distance_ci95"][0] <= 0 <= with_itself["energy_distance_ci95"][1]


def test_bad_input(five_concepts, probe, tmp_path):
    with pytest.raises(ConfigError, match="at least 2 batches"):
        diversity_coefficient(five_concepts, probe, DiversitySettings(n_batches=1))
    with pytest.raises(DataError, match="seq_len"):  # sequences shorter than T
        too_long = DiversitySettings(n_batches=2, seq_len=100_000, construction="documents")
        diversity_coefficient(five_concepts, probe, too_long)
    with pytest.raises(DataError, match="room for"):
        diversity_coefficient(five_concepts, probe, DiversitySettings(n_batches=500, batch_size=64))
    with pytest.raises(DataError, match="does not exist"):
        load_probe(tmp_path / "no-such-probe")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    text_probe = probe
    with pytest.raises((DataError, ConfigError)):
        probe_documents(empty, text_probe)
    result = CliRunner().invoke(app, ["measure", "diversity", str(five_concepts), "--probe",
                                      str(tmp_path / "nope"), "--batches", "3"])  # fmt: skip
    assert result.exit_code != 0


def test_embedding_cache_reuses_batches_and_same_numbers(probe, five_concepts, tmp_path):
    from divlab.measure.cache import EmbeddingCache

    data = probe_documents(five_concepts, probe)
    plain = alignment(data, data, probe, SETTINGS)
    cache = EmbeddingCache(tmp_path / "cache")
    first = alignment(data, data, probe, SETTINGS, cache)
    assert cache.hits == 0 and cache.misses == 2 * SETTINGS.n_batches + 2
    again = EmbeddingCache(tmp_path / "cache")
    second = alignment(data, data, probe, SETTINGS, again)
    assert again.misses == 0 and again.hits == 2 * SETTINGS.n_batches + 2
    for result in (first, second):
        assert result["align1"] == plain["align1"] and result["align2"] == plain["align2"]
    # a different estimator setting or a different probe never hits those entries
    other = EmbeddingCache(tmp_path / "cache")
    finetuned = DiversitySettings(**{**SETTINGS.__dict__, "finetune_epochs": 1})
    diversity_coefficient(data, probe, finetuned, other)
    assert other.hits == 0
    random_probe = load_probe("random:tiny", vocab_size=probe.vocab_size, device="cpu")
    diversity_coefficient(data, random_probe, SETTINGS, other)
    assert other.hits == 0


def test_align2_repeats_give_a_t_interval_around_their_mean(probe, five_concepts):
    from scipy import stats

    data = probe_documents(five_concepts, probe)
    settings = DiversitySettings(**{**SETTINGS.__dict__, "align2_repeats": 3})
    result = alignment(data, data, probe, settings)
    low, high = result["align2_ci95"]
    assert low <= result["align2"] <= high
    assert alignment(data, data, probe, SETTINGS)["align2_ci95"] is None  # one pair: no CI
    # the first repeat is the single-pair value, and one of 3 values lies within
    # (n - 1) / sqrt(n) sample SDs = 2 standard errors of their mean
    single = alignment(data, data, probe, SETTINGS)["align2"]
    standard_error = (high - low) / 2 / stats.t.ppf(0.975, 2)
    assert standard_error > 0
    assert abs(single - result["align2"]) <= 2 * standard_error * (1 + 1e-9)
    with pytest.raises(ConfigError, match="align2_repeats"):
        alignment(data, data, probe, DiversitySettings(align2_repeats=0))


def test_progress_bars_go_to_stderr_and_change_no_number(five_concepts, probe):
    """`divlab diversity` (the issue's spelling of `divlab measure diversity`) with bars on:
    stdout stays valid JSON and the coefficient is the library's, bars or not."""
    args = [str(five_concepts), "--probe", probe.source, "--batches", "5", "--batch-size", "8",
            "--seq-len", "64", "--json", "--bounds"]  # fmt: skip
    shown = CliRunner().invoke(app, ["diversity", *args, "--progress"])  # asked: drawn
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    hidden = CliRunner().invoke(app, ["measure", "diversity", *args, "--no-progress"])
    assert json.loads(hidden.stdout) == record
    assert record["diversity"] == diversity_coefficient(five_concepts, probe, SETTINGS)["diversity"]
    assert "batches" in shown.stderr and "lower bound" in shown.stderr
    assert hidden.stderr == ""


def test_energy_distance_matches_its_closed_form_for_a_normal_shift():
    """``_energy`` on 1-D samples with |x - y|: two samples of N(0, 1) are at ~0, and
    N(0, 1) against N(mu, 1) gives 2 E|X - Y| - 2 E|X - X'| with X - Y ~ N(-mu, 2) and
    X - X' ~ N(0, 2): E|N(m, s^2)| = s sqrt(2/pi) exp(-m^2 / 2s^2) + m (1 - 2 Phi(-m/s))."""
    from scipy.stats import norm

    from divlab.measure.diversity import _energy

    rng = np.random.default_rng(0)
    n, mu, replicates = 1000, 1.5, 10  # the mean over replicates: sampling noise / sqrt(10)

    def energy(a, b):
        distances = [np.abs(x[:, None] - y[None, :]) for x, y in ((a, b), (a, a), (b, b))]
        return _energy(*distances, np.arange(n), np.arange(n))

    def mean_abs(m, s):
        return s * np.sqrt(2 / np.pi) * np.exp(-(m**2) / (2 * s**2)) + m * (
            1 - 2 * norm.cdf(-m / s)
        )

    same = [energy(rng.normal(size=n), rng.normal(size=n)) for _ in range(replicates)]
    apart = [energy(rng.normal(size=n), rng.normal(mu, 1, size=n)) for _ in range(replicates)]
    assert abs(np.mean(same)) < 0.01
    expected = 2 * mean_abs(mu, np.sqrt(2)) - 2 * mean_abs(0, np.sqrt(2))
    assert np.mean(apart) == pytest.approx(expected, rel=0.03)


def test_measure_diversity_reports_every_measure_side_by_side(five_concepts, tmp_path):
    """``--metric`` runs the baselines beside (or without) Task2Vec: one JSON with each
    value, CI, settings and seconds, equal to the library's functions on the same
    documents; probe-free measures need no probe; a corpus of texts works too; a measure
    that needs a probe, or an unknown one, is one error line and exit 2."""
    from divlab.data.store import open_dataset
    from divlab.measure import baselines

    args = ["measure", "diversity", str(five_concepts), "--json", "--rounds", "10"]
    result = CliRunner().invoke(app, [*args, "--metric", "all"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["measures"]) == {"vendi-ngram", "compression", "distinct-n", "self-bleu"}
    documents = open_dataset(five_concepts).documents("train")
    direct = baselines.vendi_ngram(documents, sample=report["sample"], seed=0, rounds=10)
    assert report["measures"]["vendi-ngram"]["value"] == pytest.approx(direct["value"])
    assert all(m["seconds"] >= 0 and m["ci"] for m in report["measures"].values())

    both = CliRunner().invoke(app, [*args, "--metric", "task2vec,vendi-embedding",
                                    "--probe", "random:tiny", "--batches", "5",
                                    "--batch-size", "8", "--seq-len", "64"])  # fmt: skip
    assert both.exit_code == 0, both.output
    measures = json.loads(both.output)["measures"]
    assert set(measures) == {"task2vec", "vendi-embedding"}
    assert measures["task2vec"]["value"] == measures["task2vec"]["diversity"]

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"body": f"line {i} of {i % 3} words"}) + "\n"
                              for i in range(40)))  # fmt: skip
    text = CliRunner().invoke(
        app, ["measure", "diversity", str(corpus), "--metric", "distinct-n,compression",
              "--field", "body", "--json"],
    )  # fmt: skip
    assert text.exit_code == 0, text.output
    assert json.loads(text.output)["documents"] == 40

    from tests.test_cli import run_cli

    for bad, needle in (("task2vec", "needs --probe"), ("vendy", "unknown measure")):
        refused = run_cli("measure", "diversity", str(five_concepts), "--metric", bad)
        assert refused.returncode == 2 and needle in refused.stderr
        assert "Traceback" not in refused.stderr


def test_measure_alignment_reports_energy_distance_and_overlap(five_concepts):
    """``divlab measure alignment`` of a data set with itself: n-gram Jaccard 1 for every
    n, the energy distance beside align1 and align2."""
    sizes = ["--batches", "4", "--batch-size", "8", "--seq-len", "64"]
    args = ["measure", "alignment", str(five_concepts), str(five_concepts), "--probe",
            "random:tiny", *sizes, "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {n: j["value"] for n, j in report["overlap"]["jaccard"].items()} == {
        "1": 1.0, "2": 1.0, "4": 1.0}  # fmt: skip
    assert "energy_distance" in report and len(report["energy_distance_ci95"]) == 2
