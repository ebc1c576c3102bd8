"""Experiments from one spec: plans, runs, executors (local, Ray) and the results store."""

from divlab.experiments import kinds
from divlab.experiments.plan import Condition, RunPlan, check_fairness, conditions, runs
from divlab.experiments.results import consolidate, load_results, open_experiment
from divlab.experiments.runner import Experiment, run_experiment
from divlab.experiments.spec import ExperimentSpec, load_experiment

__all__ = [
    "Condition",
    "Experiment",
    "ExperimentSpec",
    "RunPlan",
    "check_fairness",
    "conditions",
    "consolidate",
    "kinds",
    "load_experiment",
    "load_results",
    "open_experiment",
    "run_experiment",
    "runs",
]
