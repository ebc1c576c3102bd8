"""Experiment specs: validation, plans, stable ids and fairness — all before any compute."""

from __future__ import annotations

import itertools
import os

import pytest
import torch

from divlab.errors import ConfigError
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.diversity.plan import conditions, noise_floor_condition, runs
from divlab.experiments.kinds.diversity.spec import DiversitySpec as ExperimentSpec

from ..test_cli import run_cli
from .tiny import tiny_spec, write_spec


def test_nested_plan_resolves_to_nested_concept_sets():
    plan = {"kind": "nested", "k": [4, 1, 2, 8]}
    spec = ExperimentSpec.from_dict(tiny_spec(eval={"n_concepts": 8}, plan=plan))
    found = conditions(spec)
    assert [c.name for c in found] == ["k=1", "k=2", "k=4", "k=8"]
    sets = [set(c.data["concepts"]["k"] and _resolved(c)) for c in found]
    assert all(small < big for small, big in itertools.pairwise(sets))  # C_k nested
    assert sets[-1] == set(range(8))
    assert len(runs(spec)) == 4 * 2


def _resolved(condition) -> list[int]:
    from divlab.data.ginc.dataset import ConceptSetSpec

    return ConceptSetSpec(**condition.data["concepts"]).resolve()


def test_added_plan_adds_concepts_outside_the_eval_set_and_names_its_base():
    spec = ExperimentSpec.from_dict(tiny_spec(plan={"kind": "added", "k": [2], "k_added": [0, 3]}))
    base, added = conditions(spec)
    assert (base.name, added.name, added.base_condition) == ("k=2+0", "k=2+3", "k=2+0")
    outside = set(_resolved(added)) - set(_resolved(base))
    assert len(outside) == 3 and min(outside) >= spec.eval.n_concepts


def test_ids_are_stable_and_change_with_the_recipe():
    first = [r.id for r in runs(ExperimentSpec.from_dict(tiny_spec()))]
    again = [r.id for r in runs(ExperimentSpec.from_dict(tiny_spec()))]
    assert first == again and len(set(first)) == len(first)
    other = [r.id for r in runs(ExperimentSpec.from_dict(tiny_spec(token_budget=4096)))]
    assert not set(first) & set(other)
    # the data of a condition does not depend on the recipe: the same training set
    same_data = conditions(ExperimentSpec.from_dict(tiny_spec(token_budget=4096)))
    assert [c.id for c in same_data] == [
        c.id for c in conditions(ExperimentSpec.from_dict(tiny_spec()))
    ]


def test_noise_floor_is_a_one_concept_set_under_the_same_knobs():
    spec = ExperimentSpec.from_dict(tiny_spec())
    floor = noise_floor_condition(spec)
    assert floor.n_concepts == 1 and floor.id == conditions(spec)[0].id  # k=1 is the floor


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"plan": {"kind": "nested", "k": [1, 9]}}, "exceed the eval set's 4 concepts"),
        ({"plan": {"kind": "nestled"}}, "plan.kind"),
        ({"plan": {"kind": "added", "k": [1]}}, "k_added values above 0"),
        ({"metrics": ["loss", "bleu"]}, "unknown metric"),
        ({"seeds": [0, 0]}, "seeds"),
        ({"model": {"preset": "tiny", "hidden": 3}}, "model.hidden"),
        ({"batch_tokens": 1000}, "multiple of seq_len"),
        ({"executor": {"kind": "slurm"}}, "executor.kind"),
        ({"plan": {"kind": "sets", "sets": [{"name": "a"}]}}, "exactly one of concepts and text"),
    ],
)
def test_malformed_specs_name_the_bad_field(change, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentSpec.from_dict(tiny_spec(**change))


def _sets(train: dict | None = None) -> dict:
    entries = [
        {"name": "one", "concepts": {"plan": "ids", "ids": [0]}},
        {
            "name": "noisy",
            "concepts": {"plan": "ids", "ids": [0, 1]},
            "noise": {"fraction": 0.5, "rate": 0.2},
            "train": train,
        },
    ]
    return {"kind": "sets", "sets": entries}


def test_fairness_refuses_runs_that_differ_in_more_than_their_data():
    fair = ExperimentSpec.from_dict(tiny_spec(plan=_sets()))
    assert len(runs(fair)) == 4  # quality knobs are data: allowed
    unfair = ExperimentSpec.from_dict(tiny_spec(plan=_sets({"token_budget": 16384})))
    with pytest.raises(ConfigError, match=r"unfair experiment.*token_budget.*allow_unfair"):
        runs(unfair)
    overridden = ExperimentSpec.from_dict(
        tiny_spec(plan=_sets({"token_budget": 16384}), allow_unfair=True)
    )
    assert {r.train["token_budget"] for r in runs(overridden)} == {8192, 16384}


def test_cli_refuses_bad_specs_before_any_compute(tmp_path):
    bad = write_spec(tmp_path / "bad.yaml", tiny_spec(plan=_sets({"optimizer": {"lr": 0.1}})))
    out = tmp_path / "out"
    result = run_cli("experiment", "run", str(bad), "--out", str(out))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unfair experiment" in lines[0], result.stderr
    assert not out.exists()  # nothing was written, nothing computed
    typo = write_spec(tmp_path / "typo.yaml", tiny_spec(token_budgett=5))
    result = run_cli("experiment", "validate", str(typo))
    assert result.returncode == 2 and "token_budgett" in result.stderr


def test_cli_validate_lists_conditions_and_runs(tmp_path):
    spec = write_spec(tmp_path / "ok.yaml", tiny_spec())
    result = run_cli("experiment", "validate", str(spec))
    assert result.returncode == 0, result.stderr
    assert "6 runs (3 conditions x 2 seeds)" in result.stdout


def test_local_executor_runs_one_worker_per_gpu_pinned_to_it(monkeypatch):
    import queue

    from divlab.experiments.executors import LocalExecutor, _pin_worker_to_gpu

    assert LocalExecutor(gpus=[0, 1]).workers == 2
    assert LocalExecutor(workers=3, use_gpus=False).gpus == []
    with pytest.raises(ConfigError, match="one worker per device"):
        LocalExecutor(workers=3, gpus=[0, 1])
    slots = queue.Queue()
    for gpu in (1, 0):
        slots.put(gpu)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    _pin_worker_to_gpu(slots)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # each worker starts from the parent's
    _pin_worker_to_gpu(slots)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    # a parent restricted to physical GPUs 2 and 3: slot 1 is GPU 3
    slots.put(1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    _pin_worker_to_gpu(slots)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_the_experiment_recipe_is_the_train_recipe():
    """Every TrainSpec recipe field can be set in an experiment; one that is left at its
    default leaves the run ids as they were, one that is set changes them."""
    plain = ExperimentSpec.from_dict(tiny_spec())
    accumulated = ExperimentSpec.from_dict(tiny_spec(micro_batch_size=4, compile=True))
    assert "micro_batch_size" not in runs(plain)[0].train
    train = runs(accumulated)[0].train
    assert (train["micro_batch_size"], train["compile"]) == (4, True)
    assert {r.id for r in runs(plain)}.isdisjoint(r.id for r in runs(accumulated))
    with pytest.raises(ConfigError, match=r"micro_batch_size \(5\) must divide the 16"):
        ExperimentSpec.from_dict(tiny_spec(micro_batch_size=5))
    with pytest.raises(ConfigError, match="unknown model preset 'minii'; choose one of"):
        ExperimentSpec.from_dict(tiny_spec(model={"preset": "minii"}))


def test_logging_is_monitoring_not_part_of_any_run_id(tmp_path):
    """``logging`` reaches every run's payload but neither its id nor the check that a
    relaunch is the same experiment; an unknown tracker is a ConfigError."""
    from divlab.experiments import with_logging
    from divlab.experiments.folder import claim_folder

    plain = ExperimentSpec.from_dict(tiny_spec())
    watched = ExperimentSpec.from_dict(tiny_spec(logging="tensorboard"))
    assert watched.logging == ["tensorboard"]
    assert [r.id for r in runs(plain)] == [r.id for r in runs(watched)]
    assert with_logging(watched, ["wandb", "tensorboard"]).logging == ["tensorboard", "wandb"]
    claim_folder(tmp_path / "exp", plain)
    claim_folder(tmp_path / "exp", watched)  # a relaunch that adds a tracker: same experiment
    with pytest.raises(ConfigError, match="logging"):
        ExperimentSpec.from_dict(tiny_spec(logging=["mlflow"]))


def test_a_curation_takes_only_its_own_methods_fields():
    sets = [{"name": "a", "concepts": {"plan": "eval", "n_eval": 4}}]
    spec = tiny_spec(plan={"kind": "sets", "sets": sets})
    spec["plan"]["sets"][0]["curate"] = {"method": "exact", "clusters": 3}
    with pytest.raises(ConfigError, match=r"curate\.exact\.clusters: unknown field"):
        ExperimentSpec.from_dict(spec)
    spec["plan"]["sets"][0]["curate"] = {"method": "d4", "clusters": 3}
    (condition,) = conditions(ExperimentSpec.from_dict(spec))
    assert condition.curation == {"method": "d4", "model": "probe", "clusters": 3,
                                  "r_dedup": 0.75, "r_proto": 0.5}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"probe": {"source": "random:foo"}}, "probe.source"),
        ({"probe": {"source": "trained", "preset": "foo"}}, "probe.preset"),
    ],
)
def test_a_probe_of_an_unknown_preset_is_refused_when_parsed(change, field):
    with pytest.raises(ConfigError, match=rf"{field}: .*unknown model preset 'foo'"):
        ExperimentSpec.from_dict(tiny_spec(**change))


def test_the_default_spec_holds_its_measures_and_too_small_sets_are_refused():
    spec = ExperimentSpec.from_dict({"name": "x"})  # every other field at its default
    assert spec.eval.n_docs * spec.eval.doc_length >= 16 * 32 * 128
    with pytest.raises(ConfigError, match=r"eval set is too small .* room for 8 batches"):
        ExperimentSpec.from_dict({"name": "x", "eval": {"n_docs": 64}})
    small = {"n_tokens": 900, "doc_length": 512, "seed": 2}  # one document: 2 batches
    with pytest.raises(ConfigError, match="a training set of 900 tokens is too small"):
        ExperimentSpec.from_dict(tiny_spec(training_data=small))
    documents = {**tiny_spec()["diversity"], "construction": "documents", "seq_len": 256}
    with pytest.raises(ConfigError, match="shorter than seq_len=256"):
        ExperimentSpec.from_dict(tiny_spec(diversity=documents))


def test_a_missing_corpus_is_refused_before_the_folder_is_made(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "a b c"}\n')
    sets = [{"name": "a", "text": [str(corpus)]}, {"name": "b", "text": [str(tmp_path / "gone")]}]
    spec = tiny_spec(eval={"text": [str(corpus)], "n_docs": 4}, plan={"kind": "sets", "sets": sets})
    spec["tokenizer"] = "bpe:300"
    path = write_spec(tmp_path / "text.yaml", spec)
    out = tmp_path / "out"
    for command in (["run", str(path), "--out", str(out)], ["validate", str(path)]):
        result = run_cli("experiment", *command)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and f"set 'b': corpus {tmp_path / 'gone'} does not exist" in lines[0]
    assert not out.exists()


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_cuda_on_a_machine_without_it_is_refused_before_any_work(tmp_path):
    path = write_spec(tmp_path / "cuda.yaml", tiny_spec(device="cuda"))
    out = tmp_path / "out"
    for command in (["run", str(path), "--out", str(out)], ["validate", str(path)]):
        result = run_cli("experiment", *command)
        assert result.returncode == 2, result.stderr
        assert "device: cuda, but this machine has no CUDA device" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"token_budgt": 5}, "token_budgt: unknown field; did you mean 'token_budget'?"),
        ({"eval": {"n_concept": 4}}, "eval.n_concept: unknown field; did you mean 'n_concepts'?"),
        ({"kind": "colapse"}, "sft; did you mean 'collapse'?"),
        ({"model": {"preset": "tinny"}}, "did you mean 'tiny'?"),
        ({"zzzz_qqq": 1}, "zzzz_qqq: unknown field (check the spelling"),
    ],
)
def test_unknown_names_get_the_closest_valid_one(change, message):
    spec = {"name": "typo", **change}
    with pytest.raises(ConfigError) as error:
        kinds.spec_from_dict(spec, source="test")
    assert message in str(error.value)
