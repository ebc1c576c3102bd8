"""GINC: mixtures of HMMs ("concepts") with known structure and ground truth."""

from divlab.data.ginc.concept_sets import (
    added_concepts,
    eval_concepts,
    nested_concepts,
    ood_concepts,
)
from divlab.data.ginc.dataset import (
    DuplicateSpec,
    GincDataset,
    GincSpec,
    NoiseSpec,
    PromptSetSpec,
    SplitSpec,
    generate,
)
from divlab.data.ginc.family import Concept, ConceptFamily, FamilySpec
from divlab.data.ginc.oracle import bayes_mixture_nll, forward, oracle_nll
from divlab.data.ginc.prompts import make_prompts
from divlab.data.ginc.sampler import sample_documents
from divlab.data.ginc.truth import ground_truth_diversity

__all__ = [
    "Concept",
    "ConceptFamily",
    "DuplicateSpec",
    "FamilySpec",
    "GincDataset",
    "GincSpec",
    "NoiseSpec",
    "PromptSetSpec",
    "SplitSpec",
    "added_concepts",
    "bayes_mixture_nll",
    "eval_concepts",
    "forward",
    "generate",
    "ground_truth_diversity",
    "make_prompts",
    "nested_concepts",
    "ood_concepts",
    "oracle_nll",
    "sample_documents",
]
