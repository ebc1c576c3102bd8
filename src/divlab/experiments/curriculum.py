"""``kind: curriculum``: the same training data in different orders, at the same budget.

One training set of GINC domains (``divlab.experiments.domains``: ``shares`` of each
domain, default uniform; one pass over the trained tokens) is written once per ordering
in that ordering's document order, and trained with ``shuffle: false``, so every arm sees
the same multiset of documents and only their order differs:

* ``shuffle``: a uniform random permutation (the reference arm);
* ``staged``: domain after domain (``stages``, default the domains' order), shuffled
  within each stage;
* ``schedule``: piecewise-linear mixture weights over training progress (``weights``:
  K rows of one weight per domain at progress 0, 1/(K-1), ..., 1); see
  ``domains.scheduled_order``.

Speed of learning per ordering, from each run's learning curve on the domains' eval set
(``divlab.evaluate.speed``): the area under the loss curve (its mean over training, lower
= learned sooner) and the tokens to reach ``oracle + threshold_gap``, per concept, per
domain (token-weighted concept losses; threshold from the domain's oracle loss) and
overall. Every seed trains each ordering from its own init; differences to the shuffle
arm are paired by seed.

Tables: ``curriculum.parquet`` (one row per run and series: ordering, seed, level
``all`` / ``domain`` / ``concept``, series, AUC, threshold, tokens to threshold, final
loss) and ``curriculum_curves.parquet`` (ordering, seed, tokens, level, series, loss).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from divlab.experiments.domains import DomainSpec, check_domains
from divlab.experiments.spec import CommonSpec
from divlab.specs import Spec


class OrderingSpec(Spec):
    """One arm: a document order of the shared training data."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.=+-]+$")
    kind: Literal["shuffle", "staged", "schedule"]
    stages: list[str] | None = Field(None, description="staged: domain names, first to last")
    weights: list[list[float]] | None = Field(
        None, description="schedule: K >= 2 rows of per-domain weights over training progress"
    )

    @model_validator(mode="after")
    def _fields(self) -> OrderingSpec:
        if self.stages is not None and self.kind != "staged":
            raise ValueError(f"ordering {self.name!r}: stages are for kind 'staged' only")
        if (self.weights is not None) != (self.kind == "schedule"):
            raise ValueError(
                f"ordering {self.name!r}: kind 'schedule' needs weights (and only it takes them)"
            )
        return self


def _default_orderings() -> list[OrderingSpec]:
    return [
        OrderingSpec(name="shuffle", kind="shuffle"),
        OrderingSpec(name="staged", kind="staged"),
    ]


class CurriculumSection(Spec):
    domains: list[DomainSpec]
    shares: list[float] | None = Field(None, description="domain token shares; default uniform")
    orderings: list[OrderingSpec] = Field(default_factory=_default_orderings)
    seed: int = Field(0, ge=0, description="the documents' and orders' seed")
    threshold_gap: float = Field(0.1, ge=0, description="threshold = oracle loss + gap")

    @model_validator(mode="after")
    def _consistent(self) -> CurriculumSection:
        check_domains(self.domains)
        names = [d.name for d in self.domains]
        if self.shares is not None:
            if len(self.shares) != len(names) or min(self.shares) <= 0:
                raise ValueError(f"shares needs one weight > 0 per domain ({len(names)})")
            if abs(sum(self.shares) - 1) > 1e-9:
                raise ValueError(f"shares must sum to 1, got {sum(self.shares)}")
        arms = [o.name for o in self.orderings]
        if len(set(arms)) != len(arms):
            raise ValueError(f"ordering names must be distinct, got {arms}")
        if not any(o.kind == "shuffle" for o in self.orderings) or len(arms) < 2:
            raise ValueError("list at least 2 orderings, one of kind 'shuffle' (the reference arm)")
        for o in self.orderings:
            if o.stages is not None and sorted(o.stages) != sorted(names):
                raise ValueError(
                    f"ordering {o.name!r}: stages {o.stages} must list every domain once {names}"
                )
            if o.weights is not None:
                rows = np.asarray(o.weights, float)
                if rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] != len(names):
                    raise ValueError(
                        f"ordering {o.name!r}: weights needs >= 2 rows of {len(names)} "
                        "weights (one per domain)"
                    )
                if rows.min() < 0 or np.any(rows.sum(axis=0) == 0):
                    raise ValueError(
                        f"ordering {o.name!r}: weights must be >= 0 and give every domain "
                        "weight somewhere"
                    )
        return self

    @property
    def reference(self) -> str:
        return next(o.name for o in self.orderings if o.kind == "shuffle")

    def share_vector(self) -> np.ndarray:
        n = len(self.domains)
        return np.asarray(self.shares if self.shares else [1 / n] * n, float)


class CurriculumExperimentSpec(CommonSpec):
    """``kind: curriculum``: the common recipe plus the ``curriculum`` section."""

    kind: Literal["curriculum"]
    curriculum: CurriculumSection

    @model_validator(mode="after")
    def _domains_in_eval(self) -> CurriculumExperimentSpec:
        if self.is_text:
            raise ValueError("curricula run on GINC domains; remove eval.text")
        check_domains(self.curriculum.domains, self.eval.n_concepts)
        n = len(self.curriculum.domains)
        if min(self.curve_docs, self.evaluation.limit) < n:
            raise ValueError(
                f"curve_docs and evaluation.limit must be >= the {n} domains (a multiple of "
                f"{n} is balanced), so that every domain has a learning curve"
            )
        return self


SPEC = CurriculumExperimentSpec


# ---- orders and speed --------------------------------------------------------------------


def ordering(arm: OrderingSpec, domain_of: np.ndarray, section: CurriculumSection) -> np.ndarray:
    """The document order of ``arm`` over documents whose domains are ``domain_of``."""
    from divlab.experiments import domains as dom

    names = [d.name for d in section.domains]
    rng = dom.seed_for(section.seed, "order", arm.name)
    if arm.kind == "shuffle":
        return dom.shuffled_order(len(domain_of), rng)
    if arm.kind == "staged":
        return dom.staged_order(domain_of, arm.stages or names, rng)
    return dom.scheduled_order(domain_of, names, arm.weights, rng)


def curve_series(curve: list[dict], weights: dict[str, dict[str, int]]) -> dict:
    """Loss series of a learning curve: ``("all", "all")``, ``("domain", name)`` and
    ``("concept", id)``, each ``(tokens, losses, oracle)``."""
    from divlab.experiments.domains import domain_losses

    tokens = np.array([row["tokens"] for row in curve], float)
    last = curve[-1]
    series = {("all", "all"): (tokens, [r["loss"] for r in curve], last.get("oracle_loss"))}
    oracle = last.get("per_concept_oracle", {})
    for concept in last.get("per_concept", {}):
        losses = [r["per_concept"][concept] for r in curve]
        series[("concept", concept)] = (tokens, losses, oracle.get(concept))
    domain_oracle = domain_losses(oracle, weights) if oracle else {}
    for name in weights:
        losses = [domain_losses(r["per_concept"], {name: weights[name]})[name] for r in curve]
        series[("domain", name)] = (tokens, losses, domain_oracle.get(name))
    return series


def speed_rows(curve: list[dict], weights: dict, gap: float) -> list[dict]:
    """AUC, threshold (oracle + ``gap``) and tokens to it for every series of a curve."""
    from divlab.evaluate.speed import area_under_curve, tokens_to_threshold

    rows = []
    for (level, name), (tokens, losses, oracle) in curve_series(curve, weights).items():
        threshold = oracle + gap if oracle is not None else None
        reached = tokens_to_threshold(tokens, losses, threshold) if threshold is not None else None
        rows.append(
            {
                "level": level,
                "series": str(name),
                "auc": area_under_curve(tokens, losses),
                "threshold": threshold,
                "tokens_to_threshold": np.nan if reached is None else reached,
                "final_loss": float(losses[-1]),
            }
        )
    return rows


# ---- the experiment ----------------------------------------------------------------------


def describe(spec: CurriculumExperimentSpec) -> list[str]:
    from divlab.experiments.domains import n_documents

    c = spec.curriculum
    shares = c.share_vector()
    lines = [
        f"domain {d.name}: concepts {d.concepts}, share {s:.3f}"
        for d, s in zip(c.domains, shares, strict=True)
    ]
    for o in c.orderings:
        how = {"shuffle": "uniform shuffle", "staged": f"stages {o.stages or 'in domain order'}"}
        lines.append(f"ordering {o.name}: {how.get(o.kind, f'schedule {o.weights}')}")
    lines.append(
        f"{n_documents(spec)} documents (one pass); {len(c.orderings) * len(spec.seeds)} runs "
        f"of {spec.token_budget} tokens; reference arm {c.reference}"
    )
    return lines


def run(
    spec: CurriculumExperimentSpec,
    out,
    *,
    executor=None,
    progress: bool = True,
    report: bool = True,
    log=None,
) -> dict:
    """Run (or resume) the curriculum experiment in ``out``: data, one ordered copy per
    arm, every (arm, seed) run, the speed tables and the report."""
    import pandas as pd

    from divlab.data.store import open_dataset
    from divlab.experiments import domains as dom
    from divlab.experiments import steps
    from divlab.experiments.plan import stable_hash
    from divlab.io import write_json
    from divlab.train.loop import load_curve

    log = steps.logger(log, progress)
    root = steps.claim_folder(out, spec)
    executor = executor or steps.executor_for(spec)
    started = steps.now()
    c = spec.curriculum
    names = [d.name for d in c.domains]

    eval_data = dom.domain_eval_set(spec, root, c.domains)
    n_docs = dom.n_documents(spec)
    log(f"data: {len(names)} domain pools; {n_docs} documents in one pass")
    pools = {k: open_dataset(p) for k, p in dom.domain_pools(spec, root, c.domains, n_docs).items()}
    like = next(iter(pools.values()))
    rng = dom.seed_for(c.seed, "documents")
    documents = dom.mixture_documents(pools, c.share_vector(), n_docs, rng)
    domain_of = documents.column("domain").to_numpy(zero_copy_only=False)
    key = [[steps.relative(p.path, root) for p in pools.values()], c.share_vector().tolist(), n_docs, c.seed]

    payloads, arms = [], []
    for arm in c.orderings:
        path = root / "data" / f"order-{arm.name}-{stable_hash([key, arm.model_dump()], 8)}"
        order = ordering(arm, domain_of, c)
        dom.write_training_set(path, like, documents, order, ordering=arm.model_dump())
        for seed in spec.seeds:
            payloads.append(
                steps.run_payload(spec, root, arm.name, path, seed, eval_data, shuffle=False)
            )
            arms.append(arm.name)
    pending = len(steps.unfinished(payloads))
    records = steps.run_all(payloads, executor, progress, "orderings", log)

    weights = dom.domain_weights(c.domains, dom.scored_concepts(eval_data, spec.curve_docs))
    speed, curves = [], []
    for record, payload, arm in zip(records, payloads, arms, strict=True):
        curve = load_curve(payload["out"])
        base = {"ordering": arm, "seed": record["seed"], "run_id": record["run_id"]}
        speed += [base | row for row in speed_rows(curve, weights, c.threshold_gap)]
        for (level, name), (tokens, losses, _) in curve_series(curve, weights).items():
            curves += [
                base | {"tokens": t, "level": level, "series": str(name), "loss": v}
                for t, v in zip(tokens, losses, strict=True)
            ]
    pd.DataFrame(speed).to_parquet(root / "curriculum.parquet", index=False)
    pd.DataFrame(curves).to_parquet(root / "curriculum_curves.parquet", index=False)
    write_json(
        root / "curriculum.json",
        {
            "domains": {d.name: d.concepts for d in c.domains},
            "orderings": [o.name for o in c.orderings],
            "reference": c.reference,
            "threshold_gap": c.threshold_gap,
            "n_documents": n_docs,
        },
    )
    result = {
        "runs": len(payloads),
        "trained": pending,
        "table": str(root / "curriculum.parquet"),
    }
    return steps.finish(root, spec, result, report, started, executor)


def documents_of(path: str | Path) -> list[tuple[str, int]]:
    """(domain, doc id) of every document of an ordered training set, in order."""
    from divlab.data.store import open_dataset

    table = open_dataset(path).table("train", ["domain", "doc_id"])
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
