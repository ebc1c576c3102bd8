"""One synthetic experiment and its report, built once per session (drawing takes seconds)."""

import pytest

from divlab.experiments import build_report
from tests.report.synthetic import make_synthetic_experiment


@pytest.fixture(scope="session")
def synthetic_report(tmp_path_factory):
    """(experiment folder, path of its report's index.html)."""
    experiment = make_synthetic_experiment(tmp_path_factory.mktemp("report") / "synthetic")
    return experiment, build_report(experiment)
