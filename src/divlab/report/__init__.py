"""A library for reports: the shared HTML page, figures, statistics and number formats.

It knows no experiment: each experiment kind builds its sections with it, and
``divlab.experiments.build_report`` puts them on the page.
"""

from divlab.report.stats import condition_means, correlation, effect_size, fit_line

__all__ = ["condition_means", "correlation", "effect_size", "fit_line"]
