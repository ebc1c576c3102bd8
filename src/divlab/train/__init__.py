"""Train small Hugging Face decoders at a fixed token budget."""

from divlab.train.loop import Callback, Run, load_curve, train
from divlab.train.models import PRESETS, ModelSpec, count_parameters, training_flops
from divlab.train.spec import OptimizerSpec, ScheduleSpec, TrainSpec

__all__ = [
    "PRESETS",
    "Callback",
    "ModelSpec",
    "OptimizerSpec",
    "Run",
    "ScheduleSpec",
    "TrainSpec",
    "count_parameters",
    "load_curve",
    "train",
    "training_flops",
]
