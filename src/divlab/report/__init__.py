"""Statistics, plots A-E and a self-contained HTML report of an experiment folder.

from divlab.report import build_report
build_report("runs/my-experiment")  # -> runs/my-experiment/report/index.html
"""

from divlab.report.build import build_report
from divlab.report.stats import condition_means, correlation, effect_size, fit_line

__all__ = ["build_report", "condition_means", "correlation", "effect_size", "fit_line"]
