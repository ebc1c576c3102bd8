"""Model collapse (``kind: collapse``): the analytic chains against their closed forms
(BRIEF section 7), the LM recursion on a tiny GINC setup, bad specs and the report.

Monte Carlo checks use fixed seeds and a tolerance of 4 standard errors of the mean over
chains (a two-sided 4-sigma band: a correct simulator fails it with probability ~6e-5 per
comparison), with enough chains that the standard error is itself small (asserted)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from divlab.errors import ConfigError
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.collapse import chains
from divlab.experiments.kinds.collapse import report as collapse_report
from divlab.experiments.kinds.collapse import run as collapse
from divlab.experiments.kinds.collapse.spec import arms, n_documents
from tests.experiments.tiny import InProcess, assert_plan_matches, tiny_kind_spec

TOLERANCE = 4.0  # standard errors


def _within(frame: pd.DataFrame, stat: str, rows=slice(None)) -> None:
    part = frame.iloc[rows]
    se = part[f"{stat}_se"].to_numpy()
    error = np.abs(part[f"{stat}_mean"] - part[f"{stat}_exact"]).to_numpy()
    assert np.all(error <= TOLERANCE * se + 1e-12), (stat, (error / np.maximum(se, 1e-300)).max())


# ---- analytic chains --------------------------------------------------------------------
def test_c4_closed_form():
    # c4(2) = sqrt(2 / pi); c4(M) = 1 - 1/(4M) - 7/(32 M^2) + O(M^-3); no overflow at large M
    assert chains.c4(2) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-12)
    assert chains.c4(1000) == pytest.approx(1 - 1 / 4000 - 7 / (32 * 1000**2), abs=1e-9)
    assert np.isfinite(chains.c4(10**6))


def test_gaussian_expectations_match_the_brief():
    exact = chains.gaussian_expectations(100, 51).iloc[-1]
    assert exact.w2_exact == pytest.approx(0.7517, abs=1e-4)
    assert exact.std_exact == pytest.approx(0.8792, abs=1e-4)
    assert exact.variance_exact == 1.0 and exact.mean_error_exact == pytest.approx(0.51)
    biased = chains.gaussian_expectations(50, 20, sigma=2.0, estimator="biased")
    assert np.allclose(biased.variance_exact, 4.0 * (49 / 50) ** np.arange(21))


def test_gaussian_chain_matches_exact_expectations():
    frame = chains.gaussian_chain(100, 51, chains=10_000, seed=0)
    assert len(frame) == 52 and frame.generation.tolist() == list(range(52))
    for stat in chains.GAUSSIAN_STATS:
        _within(frame, stat, slice(1, None))
    last = frame.iloc[-1]
    assert last.w2_se < 0.02 * last.w2_exact and last.std_se < 0.005  # a tight test
    assert last.w2_mean == pytest.approx(0.7517, abs=TOLERANCE * last.w2_se)


def test_biased_estimator_decays_and_a_schedule_converges():
    biased = chains.gaussian_chain(50, 30, chains=10_000, estimator="biased", seed=1)
    for stat in chains.GAUSSIAN_STATS:
        _within(biased, stat, slice(1, None))
    assert biased.variance_mean.iloc[-1] < 0.6  # (49/50)^30 = 0.545: the variance collapses
    # M_i growing super-linearly: sum 1/M_i converges, so E[W2^2] stays bounded
    schedule = [50 * 2**i for i in range(6)]
    grown = chains.gaussian_chain(schedule, chains=2000, seed=2)
    for stat in chains.GAUSSIAN_STATS:
        _within(grown, stat, slice(1, None))
    assert grown.mean_error_exact.iloc[-1] == pytest.approx(sum(1 / m for m in schedule))


def test_discrete_chain_gini_simpson_decay():
    frame = chains.discrete_chain(50, 30, chains=20_000, support=10, seed=0)
    assert np.allclose(frame.gini_simpson_exact, 0.9 * (1 - 1 / 50) ** np.arange(31))
    _within(frame, "gini_simpson", slice(1, None))
    _within(frame, "tail_mass", slice(1, None))  # a martingale: E[tail] = its start
    assert frame.gini_simpson_se.iloc[-1] < 0.002
    # collapse shows over chains: support shrinks and whole tails are lost
    assert frame.support_mean.is_monotonic_decreasing and frame.support_mean.iloc[-1] < 4
    assert frame.tail_lost_mean.iloc[0] == 0 and frame.tail_lost_mean.iloc[-1] > 0.5


def test_discrete_chain_absorption_probabilities():
    p0 = [0.5, 0.3, 0.15, 0.05]
    table = chains.discrete_absorption(10, 300, chains=20_000, probabilities=p0, seed=0)
    assert table.chains_absorbed.iloc[0] == 20_000  # all absorbed after 300 fits
    assert np.allclose(table.q_exact, p0)
    assert np.all(np.abs(table.absorbed - table.q_exact) <= TOLERANCE * table.absorbed_se)
    assert table.absorbed.sum() == pytest.approx(1.0)


def test_tail_set_and_mass():
    p = np.array([0.8, 0.05, 0.1, 0.05])
    assert chains.tail_set(p, 0.1).tolist() == [1, 3]
    assert chains.tail_set(p, 0.2).tolist() == [1, 2, 3]
    assert chains.tail_set(np.array([0.5, 0.5]), 0.1).tolist() == [0]  # at least the rarest
    assert chains.tail_mass(np.array([[1, 1, 1, 1], [0, 0, 3, 1]]), np.array([1, 3])).tolist() == [
        0.5,
        0.25,
    ]
    assert collapse.coverage(np.array([3, 3, 5, 5])) == {
        "concepts_covered": 2,
        "concept_entropy": pytest.approx(math.log(2)),
    }


# ---- bad input --------------------------------------------------------------------------
def _spec(**collapse_section) -> dict:
    spec = tiny_kind_spec("collapse", name="collapse-tiny", seeds=[0])
    spec["collapse"] = collapse_section
    return spec


@pytest.mark.parametrize(
    "section, message",
    [
        ({"gaussian": {"M": 0}}, "M_i must be >= 1"),
        ({"gaussian": {"M": []}}, "empty"),
        ({"gaussian": {"M": 1}}, "at least 2 samples"),
        ({"discrete": {"M": 0}}, "M_i must be >= 1"),
        ({"gaussian": {"M": [50, 60], "generations": 3}}, "generations"),
        ({"discrete": {"support": 4, "probabilities": [0.5, 0.5]}}, "not both"),
        ({"discrete": {"probabilities": [1.0, -0.5]}}, "non-negative"),
        ({"lm": {"real_fraction": [-0.1]}}, "real_fraction"),
        ({"lm": {"real_fraction": [0.1, 1.5]}}, "real_fraction"),
        ({"lm": {"real_fraction": []}}, "non-empty"),
        ({"lm": {"decoding": "greedy"}}, "prompt_tokens"),
        ({"lm": {"prompt_tokens": 512}}, "doc_length"),
        ({"lm": {"window": 64}}, "seq_len"),
        ({"lm": {"generations": 0}}, "generations"),
        ({"gaussian": {"workflows": ["replace", "recycle"]}}, "workflows"),
        ({"gaussian": {"workflows": ["accumulate-subsample"], "subsample": 101}}, "larger than"),
        ({"gaussian": {"subsample": 10}}, "needs the accumulate-subsample"),
        ({"gaussian": {"workflows": ["accumulate"], "M": [50, 60]}}, "constant M"),
        ({"regression": {"T": 11, "d": 10}}, "must exceed d"),
        ({"regression": {"subsample": 5, "d": 10}}, "at least 10"),
        ({"lm": {"workflows": ["replace", "recycle"]}}, "workflows"),
        ({"lm": {"workflows": []}}, "non-empty"),
        ({"lm": {"workflows": ["accumulate-subsample"], "subsample_docs": 10**6}}, "larger than"),
        ({"lm": {"workflows": ["accumulate"], "real_fraction": [0.5]}}, "replace workflow"),
        ({"lm": {"subsample_docs": 8}}, "needs the accumulate-subsample"),
        ({"gaussian": None, "discrete": None, "lm": None}, "at least one"),
    ],
)
def test_bad_specs_raise_one_config_error(section, message):
    with pytest.raises(ConfigError, match=message):
        kinds.spec_from_dict(_spec(**section), source="test")


def test_bad_function_arguments():
    with pytest.raises(ConfigError, match="empty"):
        chains.gaussian_chain([], chains=10)
    with pytest.raises(ConfigError, match=">= 1"):
        chains.discrete_chain(0, 3, chains=10, support=3)
    with pytest.raises(ConfigError, match="estimator"):
        chains.gaussian_expectations(10, 3, estimator="median")
    with pytest.raises(ConfigError, match="tail quantile"):
        chains.tail_set(np.ones(3), 1.5)


def test_diversity_settings_must_fit_a_corpus():
    too_big = {"lm": {"diversity": {"n_batches": 64, "batch_size": 64, "seq_len": 64}}}
    with pytest.raises(ConfigError, match="diversity needs"):
        kinds.spec_from_dict(_spec(**too_big), source="test")


# ---- the LM recursion on tiny GINC ------------------------------------------------------
LM_SPEC = {
    "eval": {"n_concepts": 4, "n_docs": 8, "doc_length": 64, "seed": 1, "prompts": None},
    "training_data": {"n_tokens": 2048, "doc_length": 64, "seed": 2},
    "token_budget": 4096,
    "eval_every_tokens": None,
    "curve_docs": 4,
    "evaluation": {"limit": 4, "prefix": 16, "length": 8, "icl": False},
}
LM_SECTION = {
    "gaussian": {
        "M": 50,
        "generations": 5,
        "chains": 200,
        "workflows": ["replace", "accumulate", "accumulate-subsample"],
        "subsample": 30,
    },
    "regression": {"T": 20, "d": 4, "generations": 4, "chains": 200},
    "discrete": {"M": 20, "generations": 5, "chains": 200, "support": 5},
    "lm": {
        "generations": 3,
        "workflows": ["replace", "accumulate", "accumulate-fixed", "accumulate-subsample"],
        "real_fraction": [0.0, 1.0],
        "subsample_docs": 40,
        "diversity": {"n_batches": 4, "batch_size": 4, "seq_len": 32, "bootstrap": 20},
    },
}


ARMS = ("real0", "real1", "accumulate", "accumulate-fixed", "accumulate-subsample")


@pytest.fixture(scope="module")
def recursion(tmp_path_factory):
    """3 generations, replace arms keeping 0 % and 100 % real data and the three
    accumulating workflows, one seed, report built."""
    spec = kinds.spec_from_dict(_spec(**LM_SECTION) | LM_SPEC, source="test")
    out = tmp_path_factory.mktemp("collapse") / "tiny"
    executor = InProcess()
    result = collapse.run(spec, out, executor=executor, progress=False)
    assert_plan_matches(spec, out)
    return spec, out, result, executor


def test_recursion_records_every_generation(recursion):
    spec, _, result, executor = recursion
    table = pd.read_parquet(result["tables"]["lm"])
    assert len(executor.ran) == 1 + 2 * 5  # generation 0 is shared by the arms
    described = "\n".join(collapse.describe(spec))
    assert "3 generations x 5 arms x seeds [0] = 11 runs" in described
    assert "accumulate: real + every synthetic corpus; 4,096 tokens x" in described
    assert "(up to 12,288)" in described and "40 documents drawn" in described
    assert sorted(zip(table.arm, table.generation, strict=True)) == sorted(
        (arm, g) for arm in ARMS for g in range(3)
    )
    n_docs = n_documents(spec)
    replace = table[table.workflow == "replace"]
    assert n_docs == 32 and (replace.n_docs == n_docs).all()
    first = table[table.generation == 0]
    assert first.run_id.nunique() == 1 and first.loss.nunique() == 1
    assert (first.generated_docs == 0).all() and (first.assignment_accuracy == 1.0).all()
    no_real = table[(table.arm == "real0") & (table.generation > 0)]
    assert (no_real.generated_docs == n_docs).all()
    # coverage and diversity are recorded for every generated corpus, within their bounds
    assert table.concepts_covered.between(1, 4).all()
    assert (table.concept_entropy <= np.log(table.concepts_covered) + 1e-12).all()
    assert (table.concept_entropy >= 0).all() and table.diversity.notna().all()
    assert table.tail_mass.between(0, 1).all() and (first.tail_mass <= 0.1).all()
    assert np.isfinite(table[["loss", "gap", "oracle_loss"]]).all().all()


def test_accumulated_pools_hold_the_real_data_and_every_earlier_corpus(recursion):
    """Generation n of an accumulating arm trains on the real corpus and the synthetic
    corpora sampled by generations 0 .. n-1, each whole and once (ids and tokens checked);
    the subsample arm on a fixed-size draw without replacement from that pool."""
    spec, out, result, _ = recursion
    n = n_documents(spec)
    (real_dir,) = (out / "data").glob("real-*")
    real = pd.read_parquet(real_dir / "train.parquet")
    table = pd.read_parquet(result["tables"]["lm"])
    for generation in (1, 2):
        pool = pd.read_parquet(out / "pools" / f"accumulate-s0-g{generation}" / "train.parquet")
        # generation 1's corpus is the shared g0 model's sample, the same as replace's
        own = [f"accumulate-s0-g{g}" for g in range(2, generation + 1)]
        names = ["real", "real0-s0-g1", *own]
        assert list(dict.fromkeys(pool.origin)) == names and len(pool) == n * (generation + 1)
        for name, part in pool.groupby("origin", sort=False):
            assert part.origin_doc_id.tolist() == list(range(n))
            source = real if name == "real" else corpora(out, name)
            assert all(
                np.array_equal(a, b) for a, b in zip(part.tokens, source.tokens, strict=True)
            )
        assert pool.doc_id.tolist() == list(range(len(pool)))
        draw = pd.read_parquet(
            out / "pools" / f"accumulate-subsample-s0-g{generation}" / "train.parquet"
        )
        assert len(draw) == 40 and not draw.duplicated(["origin", "origin_doc_id"]).any()
        own = [f"accumulate-subsample-s0-g{g}" for g in range(2, generation + 1)]
        assert set(draw.origin) <= {"real", "real0-s0-g1", *own}
        for row in draw.itertuples():  # each drawn document is its source's, unchanged
            source = real if row.origin == "real" else corpora(out, row.origin)
            assert np.array_equal(row.tokens, source.tokens.iloc[row.origin_doc_id])
        rows = table[table.generation == generation].set_index("arm")
        assert rows.loc["accumulate", "n_docs"] == n * (generation + 1)
        assert rows.loc["accumulate", "real_share"] == pytest.approx(1 / (generation + 1))
        assert rows.loc["accumulate-subsample", "n_docs"] == 40


def corpora(out, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / "corpora" / name / "train.parquet")


def test_every_arm_trains_on_the_budget_it_claims(recursion):
    spec, _, result, _ = recursion
    table = pd.read_parquet(result["tables"]["lm"])
    for row in table.itertuples():
        grows = row.workflow == "accumulate"
        claimed = spec.token_budget * (row.generation + 1 if grows else 1)
        assert row.token_budget == claimed and row.tokens == claimed, (row.arm, row.generation)


def test_keeping_all_real_data_reproduces_generation_0(recursion):
    """The 100 % arm trains on the real corpus again (same documents, same order, same
    seed): on CPU every number equals generation 0's. A direction for the 0 % arm is not
    asserted: at this size generation 0 is undertrained, so its samples are closer to
    uniform than the real data and the tail mass may rise instead of fall; collapse's
    direction depends on how well each generation fits."""
    _, out, result, _ = recursion
    table = pd.read_parquet(result["tables"]["lm"])
    kept = table[table.arm == "real1"].sort_values("generation")
    columns = ["loss", "gap", "tail_mass", "concepts_covered", "concept_entropy", "diversity"]
    for column in columns:
        assert np.allclose(kept[column], kept[column].iloc[0], rtol=1e-6), column
    corpus = pd.read_parquet(out / "corpora" / "real1-s0-g1" / "train.parquet")
    assert (corpus.source == "real").all() and (corpus.concept >= 0).all()


def test_generated_corpora_are_ginc_symbols_with_assignments(recursion):
    spec, out, _, _ = recursion
    corpus = pd.read_parquet(out / "corpora" / "real0-s0-g2" / "train.parquet")
    tokens = np.stack(corpus.tokens.to_numpy())
    assert tokens.shape == (32, 64) and tokens.max() < spec.family.vocab_size
    assert (corpus.source == "generated").all() and (corpus.concept == -1).all()
    assert set(corpus.assigned_concept) <= set(range(4))
    measures = json.loads((out / "measures" / "real0-s0-g2.json").read_text())
    assert measures["concepts_covered"] == corpus.assigned_concept.nunique()


def test_sampling_is_seeded(recursion):
    spec, out, _, _ = recursion
    model = next((out / "runs").glob("g0-s0-*")) / "model"
    lm = spec.collapse.lm
    args = dict(seq_len=64, window=32, eos=22, pad=20, symbols=20, vocab_size=24, device="cpu")
    prompts = np.zeros((3, 0), dtype=np.int64)
    a = collapse.sample_documents(model, prompts, 40, lm, seed=7, **args)
    b = collapse.sample_documents(model, prompts, 40, lm, seed=7, **args)
    c = collapse.sample_documents(model, prompts, 40, lm, seed=8, **args)
    assert a.shape == (3, 40) and (a == b).all() and (a != c).any() and a.max() < 20
    greedy = lm.model_copy(update={"decoding": "greedy"})
    prefixes = np.arange(6).reshape(2, 3)
    one = collapse.sample_documents(model, prefixes, 40, greedy, seed=0, **args)
    assert (one == collapse.sample_documents(model, prefixes, 40, greedy, seed=1, **args)).all()


def test_relaunch_redoes_nothing(recursion):
    spec, out, result, _ = recursion
    corpus = out / "corpora" / "real0-s0-g1" / "summary.json"
    before = corpus.stat().st_mtime_ns
    again = InProcess()
    collapse.run(spec, out, executor=again, progress=False, report=False)
    assert again.ran == [] and corpus.stat().st_mtime_ns == before
    assert pd.read_parquet(result["tables"]["lm"]).equals(pd.read_parquet(out / "collapse.parquet"))


def test_report_has_the_headline_numbers(recursion):
    _, out, _, _ = recursion
    summary = json.loads((out / "report" / "summary.json").read_text())
    table = pd.read_parquet(out / "collapse.parquet")
    assert summary["kind"] == "collapse" and summary["lm"]["generations"] == 3
    for arm in ("real0", "real1"):
        own = table[table.arm == arm].sort_values("generation")
        assert summary["lm"]["arms"][arm]["loss"] == pytest.approx(own.loss.tolist())
        assert summary["lm"]["arms"][arm]["loss_last"] == pytest.approx(own.loss.iloc[-1])
    gaussian = pd.read_parquet(out / "collapse_gaussian.parquet")
    gaussian = gaussian[gaussian.workflow == "replace"].iloc[-1]  # "last": the first workflow's
    assert summary["gaussian"]["last"]["w2"]["mean"] == pytest.approx(gaussian.w2_mean)
    assert summary["gaussian"]["last"]["w2"]["exact"] == pytest.approx(gaussian.w2_exact)
    assert len(summary["discrete"]["absorption"]) == 5
    gaussian = pd.read_parquet(out / "collapse_gaussian.parquet")
    assert list(dict.fromkeys(gaussian.workflow)) == [
        "replace",
        "accumulate",
        "accumulate-subsample",
    ]
    for flow, own in gaussian.groupby("workflow"):
        reported = summary["gaussian"]["workflows"][flow]["mean_error"]
        assert reported["mean"] == pytest.approx(own.mean_error_mean.iloc[-1])
        z = (own.mean_error_mean - own.mean_error_exact) / own.mean_error_se
        assert reported["max_abs_z"] == pytest.approx(np.abs(z.iloc[1:]).max())
    regression = pd.read_parquet(out / "collapse_regression.parquet")
    assert (
        set(summary["regression"]["workflows"])
        == set(regression.workflow)
        == {
            "replace",
            "accumulate",
            "accumulate-subsample",
        }
    )
    # the verdict's seed-paired loss changes are what the table gives
    changes = {row["arm"]: row for row in summary["lm"]["loss_changes"]}
    for arm in ARMS:
        own = table[table.arm == arm].set_index("generation").loss
        assert changes[arm]["change_mean"] == pytest.approx(own.loc[2] - own.loc[0])
    assert summary["lm"]["verdict"] == collapse_report.lm_verdict(table)
    html = (out / "report" / "index.html").read_text()
    for element in (
        "lm-loss-last-real0",
        "gaussian-w2-last",
        "gaussian-accumulate-mean_error-last",
        "regression-test_error-last",
        "lm-verdict",
        "figure-lm-metrics",
        "spec-dump",
    ):
        assert f"id='{element}'" in html


def test_analytic_only_experiment(tmp_path):
    spec = kinds.spec_from_dict(
        _spec(gaussian={"M": [60, 80], "chains": 50}, discrete=None, lm=None), source="test"
    )
    assert collapse.describe(spec) == [
        "Gaussian chain: 2 fits of M = [60, 80], 50 chains, unbiased variance; workflows replace"
    ]
    result = collapse.run(spec, tmp_path / "analytic", progress=False)
    summary = json.loads((tmp_path / "analytic" / "report" / "summary.json").read_text())
    assert set(summary) == {"kind", "gaussian"} and summary["gaussian"]["generations"] == 2
    assert "lm" not in result["tables"]


# ---- the verdict ------------------------------------------------------------------------
def _verdict_table(changes: dict[str, list[float]], seeds: int = 3) -> pd.DataFrame:
    """Loss 1.0 at generation 0 for every seed; at generation 1 each arm's loss is 1.0 plus
    its per-seed change."""
    rows = []
    for seed in range(seeds):
        for arm, deltas in changes.items():
            workflow = "replace" if arm.startswith("real") else arm
            for generation, loss in ((0, 1.0), (1, 1.0 + deltas[seed])):
                rows.append(
                    {"arm": arm, "workflow": workflow, "seed": seed, "generation": generation,
                     "loss": loss}
                )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "accumulate, words",
    [
        ([-0.10, -0.12, -0.08], "did not degrade: its loss did not rise, and it ended below"),
        ([0.10, 0.12, 0.08], "degraded, but more slowly than real0"),
        ([0.80, 0.90, 0.85], "ended above real0: it degraded more"),
        ([-0.5, 0.3, 1.1], "showed no rise we can detect, but we cannot tell it from real0"),
        ([0.29, 0.52, 0.31], "degraded, and we cannot tell it from real0"),
    ],
)
def test_verdict_says_what_the_intervals_support(accumulate, words):
    """Replace rises by 0.3 +- 0.1 (CI above 0); the accumulating arm's words follow its
    own change's CI and its seed-paired difference from replace."""
    table = _verdict_table({"real0": [0.3, 0.4, 0.2], "accumulate": accumulate})
    lines = collapse_report.lm_verdict(table)
    assert lines[0].startswith(f"At this scale, accumulate {words}"), lines
    assert lines[1].startswith("real0: eval loss from generation 0 to 1 rose by 0.3")


def test_verdict_is_withheld_below_three_seeds_and_without_a_baseline():
    two = collapse_report.lm_verdict(
        _verdict_table({"real0": [0.3, 0.4], "accumulate": [-0.1, -0.1]}, seeds=2)
    )
    assert not any(line.startswith("At this scale") for line in two)
    assert any("no verdict is drawn" in line for line in two)
    one = collapse_report.lm_verdict(_verdict_table({"real0": [0.3], "accumulate": [0.1]}, 1))
    assert "95% CI n/a: one seed" in one[0]
    alone = collapse_report.lm_verdict(_verdict_table({"accumulate": [0.1, 0.2, 0.15]}))
    assert not any(line.startswith("At this scale") for line in alone)


def test_a_spec_without_replace_survives_its_own_dump():
    """The experiment folder stores the spec's dump; a relaunch reads it back."""
    spec = kinds.spec_from_dict(_spec(lm={"workflows": ["accumulate"]}), source="test")
    again = kinds.spec_from_dict(spec.model_dump(mode="json"), source="dump")
    assert again == spec and [a.name for a in arms(again.collapse.lm)] == ["accumulate"]
