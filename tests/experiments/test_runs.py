"""The building blocks every experiment kind composes (divlab.experiments.steps)."""

import contextlib
import json

import pytest

from divlab.errors import ConfigError, DataError
from divlab.experiments import folder, runs
from divlab.experiments import registry as kinds
from divlab.experiments.executors import Executor, available_cores, run_all

from .tiny import tiny_spec


class Recording(Executor):
    """Records the payloads it is given and finishes none (run_all then has no records
    to read; the test stops before that)."""

    name = "recording"

    def __init__(self, workers: int) -> None:
        self.workers, self.seen = workers, []

    def run(self, payloads, on_result) -> None:
        self.seen += payloads
        raise StopIteration


def _threads_given(executor_section: dict, tmp_path) -> list:
    spec = kinds.spec_from_dict(tiny_spec(executor=executor_section), "test")
    payloads = [
        runs.run_payload(spec, tmp_path, "a", tmp_path / "data", seed, tmp_path / "eval")
        for seed in (0, 1)
    ]
    executor = Recording(workers=2)
    with contextlib.suppress(StopIteration):
        run_all(payloads, executor, progress=False)
    return [p.threads for p in executor.seen]


def test_run_all_honours_the_specs_threads_per_worker(tmp_path):
    assert _threads_given({"kind": "local", "threads_per_worker": 3}, tmp_path) == [3, 3]
    share = max(1, available_cores() // 2)  # unset: the cores shared by the 2 workers
    assert _threads_given({"kind": "local"}, tmp_path) == [share, share]


def test_a_folder_from_before_a_new_spec_field_is_the_same_experiment(tmp_path):
    """spec.json written before ``kind`` existed (no such key) still claims its folder and
    is rewritten in the current form; a really different spec is still refused."""
    spec = kinds.spec_from_dict(tiny_spec(), "test")
    folder.claim_folder(tmp_path, spec)
    stored = json.loads((tmp_path / "spec.json").read_text())
    assert stored.pop("kind") == "diversity"
    (tmp_path / "spec.json").write_text(json.dumps(stored))

    folder.claim_folder(tmp_path, spec)
    assert json.loads((tmp_path / "spec.json").read_text()) == spec.model_dump(mode="json")
    with pytest.raises(ConfigError, match="different spec"):
        folder.claim_folder(tmp_path, kinds.spec_from_dict(tiny_spec(seeds=[5]), "test"))


def test_a_folder_of_another_kind_or_version_says_which(tmp_path):
    spec = kinds.spec_from_dict(tiny_spec(), "test")
    folder.claim_folder(tmp_path, spec)
    stored = json.loads((tmp_path / "spec.json").read_text())
    (tmp_path / "spec.json").write_text(json.dumps({**stored, "kind": "scaling"}))
    with pytest.raises(ConfigError, match="holds a scaling experiment, not a diversity one"):
        folder.claim_folder(tmp_path, spec)
    (tmp_path / "spec.json").write_text(json.dumps({**stored, "retired_field": 1}))
    with pytest.raises(ConfigError, match=r"cannot read .*retired_field"):
        folder.claim_folder(tmp_path, spec)
    (tmp_path / "spec.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="not an experiment spec"):
        folder.claim_folder(tmp_path, spec)


def test_harness_scores_become_plain_columns_with_their_sense():
    """lm-eval metrics land in results.parquet as lm_eval_<task>_<metric>; the measures
    table judges those whose sense is known (perplexity lower, accuracy higher), not their
    standard errors; a spec without lm_eval keeps its run ids (the golden test pins them),
    one with it changes them."""
    from divlab.experiments.kinds.diversity.judging import harness_direction
    from divlab.experiments.kinds.diversity.plan import runs
    from divlab.experiments.kinds.diversity.spec import DiversitySpec
    from divlab.experiments.runs import harness_column
    from tests.experiments.tiny import tiny_spec

    assert harness_column("arc_easy/acc_norm") == "lm_eval_arc_easy_acc_norm"
    assert harness_column("ginc-docs/word_perplexity") == "lm_eval_ginc_docs_word_perplexity"
    assert harness_direction("lm_eval_arc_easy_acc_norm") is True
    assert harness_direction("lm_eval_ginc_docs_word_perplexity") is False
    assert harness_direction("lm_eval_arc_easy_acc_stderr") is None
    assert harness_direction("loss") is None
    plain = DiversitySpec.from_dict(tiny_spec())
    scored = DiversitySpec.from_dict(
        tiny_spec(
            evaluation={
                "limit": 8,
                "prefix": 16,
                "length": 8,
                "lm_eval": {"tasks": ["arc_easy"], "limit": 5},
            }
        )
    )
    assert "lm_eval" not in runs(plain)[0].train["evaluation"]
    assert runs(scored)[0].train["evaluation"]["lm_eval"]["tasks"] == ["arc_easy"]
    assert {r.id for r in runs(plain)}.isdisjoint(r.id for r in runs(scored))
