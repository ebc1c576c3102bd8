"""The building blocks every experiment kind composes (divlab.experiments.steps)."""

import contextlib

from divlab.experiments import kinds, steps
from divlab.experiments.executors import Executor, available_cores

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
        steps.run_payload(spec, tmp_path, "a", tmp_path / "data", seed, tmp_path / "eval")
        for seed in (0, 1)
    ]
    executor = Recording(workers=2)
    with contextlib.suppress(StopIteration):
        steps.run_all(payloads, executor, progress=False)
    return [p["threads"] for p in executor.seen]


def test_run_all_honours_the_specs_threads_per_worker(tmp_path):
    assert _threads_given({"kind": "local", "threads_per_worker": 3}, tmp_path) == [3, 3]
    share = max(1, available_cores() // 2)  # unset: the cores shared by the 2 workers
    assert _threads_given({"kind": "local"}, tmp_path) == [share, share]
