"""Instruction-data experiments (``kind: sft``): a tiny run end to end, what each arm's
fine-tuning set holds (ground truth), shared arms, the report's verdict, and bad specs."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from divlab.data.store import open_dataset
from divlab.errors import ConfigError
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.sft import report as sft_report
from divlab.experiments.kinds.sft import run as sft
from divlab.experiments.kinds.sft.scoring import score_examples
from tests.experiments.tiny import InProcess, assert_plan_matches, tiny_kind_spec

SECTION = {
    "pool": {"size": 192, "n_examples": [2], "example_lengths": [3], "response_lengths": [1, 2]},
    "examples": 24,
    "token_budget": 1024,
    "loss_on": ["response"],
    "quantity": [12, 24],
    "wrong_share": [0.0, 0.5],
    "concepts": [1, 4],
    "selectors": ["random", "longest", "quality", "k-center", "quality-diversity"],
    "eval_prompts": 48,
}


def _spec(**sft_section) -> dict:
    spec = tiny_kind_spec("sft", name="sft-tiny", seeds=[0])
    spec["eval"]["prompts"] = None
    spec["evaluation"] = {"limit": 4, "prefix": 16, "length": 8, "icl": False}
    spec["eval_every_tokens"] = None
    spec["sft"] = SECTION | sft_section
    return spec


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    spec = kinds.spec_from_dict(_spec(), source="test")
    out = tmp_path_factory.mktemp("sft") / "tiny"
    executor = InProcess()
    sft.run(spec, out, executor=executor, progress=False)
    assert_plan_matches(spec, out)
    return spec, out, pd.read_parquet(out / sft.TABLE), executor


def test_every_arm_has_a_row_and_shared_arms_share_one_run(experiment):
    spec, _, table, executor = experiment
    arms = ["n=12", "n=24", "wrong=0.0", "wrong=0.5", "k=1", "k=4"]
    arms += [f"sel={s}" for s in SECTION["selectors"]]
    assert table.arm.tolist() == ["base", *(f"{a}-response" for a in arms)]
    # N = 24 random clean examples, wrong share 0 and all 4 concepts: one set, one run
    shared = table.set_index("arm").loc[["n=24-response", "wrong=0.0-response", "k=4-response"]]
    assert shared.run_id.nunique() == 1
    assert len(executor.ran) == 1 + sft.fine_tuning_runs(spec) == 1 + 9
    assert (table.tokens.dropna() == 1024).all()


def test_fine_tuning_sets_are_pool_examples_with_their_ground_truth(experiment):
    """Each set's documents are prompt + response of pool rows, the prompt length marks
    the prompt, and the recorded correctness is the pool's (so the wrong share is exact)."""
    _, out, table, _ = experiment
    cases = [
        ("wrong0.5-n24", "wrong0.5", 24),
        ("noisy-quality-n24", "noisy", 24),
        ("clean-k1-n24", "clean", 24),
        ("clean-n12", "clean", 12),
    ]
    for name, pool_name, n in cases:
        pool = pd.read_parquet(out / "pools" / f"{pool_name}.parquet").set_index("example_id")
        chosen = open_dataset(out / "sft-data" / f"{name}-s0").table("train").to_pandas()
        assert len(chosen) == n and chosen.example_id.is_unique
        for row in chosen.itertuples():
            source = pool.loc[row.example_id]
            expected = np.concatenate([source.prompt, source.response])
            assert np.array_equal(row.tokens, expected) and row.prompt_length == len(source.prompt)
            assert row.correct == source.correct and row.concept == source.concept
    sets = {
        name: open_dataset(out / "sft-data" / f"{name}-s0").table("train").to_pandas()
        for name in ("clean-n12", "clean-n24", "wrong0.5-n24")
    }
    # the LIMA curve's sets are nested; the wrong share of a quality arm is exact
    assert set(sets["clean-n12"].example_id) < set(sets["clean-n24"].example_id)
    assert (~sets["wrong0.5-n24"].correct).sum() == 12
    rows = table.set_index("arm")
    k1 = open_dataset(out / "sft-data" / "clean-k1-n24-s0").table("train").to_pandas()
    assert set(k1.concept) == {0} and rows.loc["k=1-response", "concepts_chosen"] == 1
    wrong = open_dataset(out / "sft-data" / "wrong0.5-n24-s0").table("train").to_pandas()
    assert rows.loc["wrong=0.5-response", "wrong_share_chosen"] == pytest.approx(
        1 - wrong.correct.mean()
    )
    # the quality selector (minus the base model's response loss) keeps fewer wrong
    # responses than the noisy pool holds (30 %): a property of this base model, checked
    assert rows.loc["sel=quality-response", "wrong_share_chosen"] < 0.3
    assert rows.loc["sel=longest-response", "mean_response_length"] == 2.0


def test_held_out_accuracy_splits_seen_and_unseen(experiment):
    _, out, table, _ = experiment
    held_out = pd.read_parquet(out / "pools" / "held_out.parquet")
    assert held_out.correct.all() and len(held_out) == 48
    row = table.set_index("arm").loc["k=1-response"]
    seen = int((held_out.concept == 0).sum())
    assert row.accuracy_seen_prompts == seen and row.accuracy_unseen_prompts == 48 - seen
    overall = (row.accuracy_seen * seen + row.accuracy_unseen * (48 - seen)) / 48
    assert row.accuracy == pytest.approx(overall)
    assert table.accuracy.between(0, 1).all() and np.isfinite(table.response_loss).all()
    run = json.loads((out / "runs" / row.run_id / "spec.json").read_text())
    assert run["loss_on"] == "response" and run["init_from"].endswith("model")


def test_relaunch_redoes_nothing(experiment):
    spec, out, table, _ = experiment
    again = InProcess()
    sft.run(spec, out, executor=again, progress=False, report=False)
    assert again.ran == []
    assert pd.read_parquet(out / sft.TABLE).equals(table)


def test_report_has_the_table_and_withholds_the_verdict_with_one_seed(experiment):
    _, out, table, _ = experiment
    html = (out / "report" / "index.html").read_text()
    for element in ("sft-verdict", "sft-table", "figure-sft-quantity", "figure-sft-selectors"):
        assert f"id='{element}'" in html
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["verdict"] == [
        "Only 1 seed(s): no verdict (a t-interval over seeds needs 3 or more)."
    ]
    assert summary["arms"]["k=1-response"]["accuracy"] == pytest.approx(
        table.set_index("arm").loc["k=1-response", "accuracy"]
    )


def test_verdict_from_planted_accuracies():
    """Three seeds; quantity does nothing, wrong responses cost 0.2, the quality selector
    gains 0.1 over random."""
    rows = []
    for seed in range(3):
        noise = 0.01 * seed
        for arm, plan, value, acc in (
            ("n=32-response", "quantity", "32", 0.5 + noise),
            ("n=512-response", "quantity", "512", 0.5 - noise),
            ("wrong=0.0-response", "quality", "0.0", 0.5 + noise),
            ("wrong=0.5-response", "quality", "0.5", 0.3 + noise),
            ("sel=random-response", "selectors", "random", 0.4 + noise),
            ("sel=quality-response", "selectors", "quality", 0.5 + 2 * noise),
        ):
            rows.append({"arm": arm, "plan": plan, "value": value, "loss_on": "response",
                         "seed": seed, "accuracy": acc})  # fmt: skip
    lines = sft_report.sft_verdict(pd.DataFrame(rows))
    assert lines[0].startswith("[loss on response tokens] N 32 -> 512: no change we can detect")
    assert lines[1].startswith("[loss on response tokens] wrong share 0.0 -> 0.5 lowered")
    assert "by 0.2" in lines[1]
    assert lines[2].startswith("[loss on response tokens] sel=quality vs random raised")


class _NextToken(torch.nn.Module):
    """A stub causal LM whose logits at position t put all mass on token input[t] + 1."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, output_hidden_states=False):
        logits = 50.0 * torch.nn.functional.one_hot((input_ids + 1) % self.vocab, self.vocab)
        hidden = (logits.float(),) if output_hidden_states else None
        return SimpleNamespace(logits=logits.float(), hidden_states=hidden)


def test_scoring_reads_the_first_response_token_and_the_response_positions():
    """Sequence <eos> + prompt + response: the logits after the last prompt token give the
    first response token; the response NLL is taken on the response positions only."""
    model = _NextToken(10)
    result = score_examples(model, [[3, 4], [1, 2, 3]], [[5, 6], [7]], eos=9, symbols=8)
    assert result["predicted"].tolist() == [5, 4]
    assert result["response_nll"][0] == pytest.approx(0.0, abs=1e-6)  # 5, 6 as predicted
    assert result["response_nll"][1] == pytest.approx(50.0, abs=1e-3)  # 7 where 4 is due
    capped = score_examples(model, [[6, 7]], [[8]], eos=9, symbols=8)
    assert capped["predicted"].tolist() == [0]  # 8 is outside the symbols: argmax over 0..7


@pytest.mark.parametrize(
    "section, message",
    [
        ({"pool": SECTION["pool"] | {"example_lengths": [1]}}, "integers >= 2"),
        ({"base": "/nonexistent/model"}, "not a model folder"),
        ({"pool": SECTION["pool"] | {"response_lengths": [64]}}, "does not fit seq_len"),
        ({"concepts": [1, 8]}, "at most eval.n_concepts"),
        ({"quantity": [500]}, "raise sft.pool.size"),
        ({"examples": 150}, "smallest pool"),
        ({"selectors": ["random", "best"]}, "selectors"),
        ({"loss_on": ["prompt"]}, "loss_on"),
        ({"wrong_share": [1.0]}, "wrong_share"),
        ({"quantity": [], "wrong_share": [], "concepts": [], "selectors": []}, "at least one"),
    ],
)
def test_bad_specs_are_one_config_error(section, message):
    with pytest.raises(ConfigError, match=message):
        kinds.spec_from_dict(_spec(**section), source="test")
