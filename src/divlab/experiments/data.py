"""The GINC data sets of an experiment, generated once into ``data/`` under a hash of what
defines them, so a relaunch (or another kind's step) reuses them.

* ``eval_data_spec`` / ``ginc_eval_set``: ``D_eval`` (the eval concepts, own seed, ICL
  prompts), or an eval set of chosen concepts;
* ``ginc_data`` / ``ginc_training_set``: a training set of a concept set under the spec's
  ``training_data`` knobs, any of which a caller may override.
"""

from __future__ import annotations

from pathlib import Path

from divlab.data.ginc.dataset import (
    ConceptSetSpec,
    DuplicateSpec,
    GincSpec,
    NoiseSpec,
    SplitSpec,
    generate,
)
from divlab.experiments.ids import stable_hash


def eval_data_spec(spec) -> dict:
    """``D_eval``: the eval concepts' documents (own seed and split stream) and ICL prompts."""
    ev = spec.eval
    ginc = GincSpec(
        family=spec.family,
        concepts=ConceptSetSpec(plan="eval", n_eval=ev.n_concepts),
        seed=ev.seed,
        splits={"eval": SplitSpec(n_docs=ev.n_docs, doc_length=ev.doc_length)},
        prompts=ev.prompts,
    )
    return ginc.model_dump(mode="json")


def ginc_data(
    spec,
    concepts: ConceptSetSpec,
    *,
    n_tokens: int | None = None,
    weighting: str | None = None,
    zipf_exponent: float | None = None,
    noise: NoiseSpec | None = None,
    duplicates: DuplicateSpec | None = None,
) -> dict:
    """The GincSpec (a dump) of a training set of ``concepts``: the spec's
    ``training_data`` knobs, each overridden where given."""
    knobs = spec.training_data
    split = SplitSpec(
        n_tokens=n_tokens or knobs.n_tokens,
        doc_length=knobs.doc_length,
        weighting=weighting or knobs.weighting,
        zipf_exponent=knobs.zipf_exponent if zipf_exponent is None else zipf_exponent,
        noise=noise or knobs.noise,
        duplicates=duplicates or knobs.duplicates,
        oracle=False,  # the oracle is measured on the eval set; training data needs none
    )
    ginc = GincSpec(
        family=spec.family,
        concepts=concepts,
        seed=knobs.seed,
        splits={"train": split},
        prompts=None,
    )
    return ginc.model_dump(mode="json")


def ginc_eval_set(
    spec, root: Path, concepts: list[int] | None = None, seed: int | None = None, name="eval"
) -> Path:
    """``D_eval`` of a GINC spec, generated once.

    With ``concepts``: an eval set of those concept ids instead (same size, family and
    oracle, no prompts), e.g. one per domain or partition, from ``seed`` (give each its
    own, derived from ``eval.seed``)."""
    data = eval_data_spec(spec)
    if concepts is not None:
        data["concepts"] = ConceptSetSpec(plan="ids", ids=list(concepts)).model_dump(mode="json")
        data["prompts"] = None
    return generate_once(root, name, data, seed)


def ginc_training_set(
    spec,
    root: Path,
    name: str,
    concepts: ConceptSetSpec | list[int],
    seed: int | None = None,
    **knobs,
) -> Path:
    """A GINC training set of ``concepts`` (a ConceptSetSpec, or concept ids) under the
    spec's ``training_data`` knobs; ``knobs`` (see ``ginc_data``) override them, and
    ``seed`` the documents' seed (sets that must not share random streams need their
    own). Generated once into ``data/<name>-<hash>``."""
    if not isinstance(concepts, ConceptSetSpec):
        concepts = ConceptSetSpec(plan="ids", ids=list(concepts))
    return generate_once(root, name, ginc_data(spec, concepts, **knobs), seed)


def generate_once(root: Path, name: str, data: dict, seed: int | None = None) -> Path:
    """Generate the GincSpec ``data`` (with ``seed``, if given) into
    ``data/<name>-<hash of data>``, unless a finished data set is there."""
    if seed is not None:
        data["seed"] = seed
    path = Path(root) / "data" / f"{name}-{stable_hash(data, 8)}"
    if not (path / "summary.json").exists():
        generate(GincSpec.from_dict(data), path, overwrite=True)
    return path
