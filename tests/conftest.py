"""Shared fixtures: small GINC data sets generated once per test session."""

import pytest
import torch

from divlab.data.ginc import GincSpec, generate

# One thread: the models under test are tiny, and on a 2-core machine shared with other
# processes more threads than free cores make every step many times slower.
torch.set_num_threads(1)


def ginc_spec(n_eval: int = 1, train_docs: int = 200, doc_length: int = 256, **extra) -> GincSpec:
    tree = {
        "family": {"vocab_size": 50, "n_values": 10, "n_slots": 10, "seed": 0},
        "concepts": {"plan": "eval", "n_eval": n_eval},
        "seed": 0,
        "splits": {
            "train": {"n_docs": train_docs, "doc_length": doc_length},
            "eval": {"n_docs": 16, "doc_length": doc_length},
        },
        "prompts": None,
        **extra,
    }
    return GincSpec.from_dict(tree)


@pytest.fixture(scope="session")
def one_concept(tmp_path_factory):
    """1 concept, 51k training tokens, 16 eval docs of 256 tokens."""
    return generate(ginc_spec(), tmp_path_factory.mktemp("data") / "one_concept")


@pytest.fixture(scope="session")
def five_concepts(tmp_path_factory):
    """5 concepts with ICL prompt sets."""
    spec = ginc_spec(
        n_eval=5,
        prompts={
            "n_prompts": 40,
            "n_examples": [0, 4],
            "example_lengths": [3, 5],
            "n_ood_concepts": 3,
        },
    )
    return generate(spec, tmp_path_factory.mktemp("data") / "five_concepts")


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory):
    """The tiny experiment (tests/experiments/tiny.py) run once, uninterrupted, on the local
    executor with 2 workers, report included: (folder, run_experiment's summary)."""
    from divlab.experiments.kinds.diversity.run import run_experiment
    from divlab.experiments.kinds.diversity.spec import DiversitySpec as ExperimentSpec
    from tests.experiments.tiny import tiny_spec

    out = tmp_path_factory.mktemp("experiments") / "tiny"
    result = run_experiment(ExperimentSpec.from_dict(tiny_spec()), out, progress=False)
    return out, result
