"""The run of ``kind: curriculum`` (see the package docstring for the design)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from divlab import seeds
from divlab.data.store import open_dataset
from divlab.evaluate.speed import area_under_curve, tokens_to_threshold
from divlab.experiments import domains as dom
from divlab.experiments.domains import domain_losses, n_documents
from divlab.experiments.executors import executor_for, run_all, unfinished
from divlab.experiments.folder import claim_folder, finish, logger, now
from divlab.experiments.ids import relative, stable_hash
from divlab.experiments.kinds.curriculum.spec import (
    CurriculumExperimentSpec,
    CurriculumSection,
    OrderingSpec,
)
from divlab.experiments.plan import RunGroup, Workload, eval_tokens
from divlab.experiments.runs import run_payload
from divlab.io import write_json, write_table
from divlab.train.loop import load_curve

# ---- orders and speed --------------------------------------------------------------------


def ordering(arm: OrderingSpec, domain_of: np.ndarray, section: CurriculumSection) -> np.ndarray:
    """The document order of ``arm`` over documents whose domains are ``domain_of``."""

    names = [d.name for d in section.domains]
    rng = seeds.rng(section.seed, "order", arm.name)
    if arm.kind == "shuffle":
        return dom.shuffled_order(len(domain_of), rng)
    if arm.kind == "staged":
        return dom.staged_order(domain_of, arm.stages or names, rng)
    return dom.scheduled_order(domain_of, names, arm.weights, rng)


def curve_series(curve: list[dict], weights: dict[str, dict[str, int]]) -> dict:
    """Loss series of a learning curve: ``("all", "all")``, ``("domain", name)`` and
    ``("concept", id)``, each ``(tokens, losses, oracle)``."""

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


def workload(spec: CurriculumExperimentSpec) -> Workload:
    """One run per ordering and seed, one pass over the same documents."""
    c = spec.curriculum
    data = n_documents(spec) * spec.training_data.doc_length
    runs = RunGroup("orderings", len(c.orderings) * len(spec.seeds), spec.token_budget, data)
    return Workload((runs,), eval_tokens(spec) + (len(c.domains) + 1 + len(c.orderings)) * data)


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

    log = logger(log, progress)
    root = claim_folder(out, spec)
    executor = executor or executor_for(spec)
    started = now()
    c = spec.curriculum

    eval_data, n_docs, pools = dom.domain_data(spec, root, c.domains, log)
    like = next(iter(pools.values()))
    rng = seeds.rng(c.seed, "documents")
    documents = dom.mixture_documents(pools, c.share_vector(), n_docs, rng)
    domain_of = documents.column("domain").to_numpy(zero_copy_only=False)
    key = [
        [relative(p.path, root) for p in pools.values()],
        c.share_vector().tolist(),
        n_docs,
        c.seed,
    ]

    payloads, arms = [], []
    for arm in c.orderings:
        path = root / "data" / f"order-{arm.name}-{stable_hash([key, arm.model_dump()], 8)}"
        order = ordering(arm, domain_of, c)
        dom.write_training_set(path, like, documents, order, ordering=arm.model_dump())
        for seed in spec.seeds:
            payloads.append(run_payload(spec, root, arm.name, path, seed, eval_data, shuffle=False))
            arms.append(arm.name)
    pending = len(unfinished(payloads))
    records = run_all(payloads, executor, progress, "orderings", log)

    weights = dom.domain_weights(c.domains, dom.scored_concepts(eval_data, spec.curve_docs))
    speed, curves = [], []
    for record, payload, arm in zip(records, payloads, arms, strict=True):
        curve = load_curve(payload.out)
        base = {"ordering": arm, "seed": record["seed"], "run_id": record["run_id"]}
        speed += [base | row for row in speed_rows(curve, weights, c.threshold_gap)]
        for (level, name), (tokens, losses, _) in curve_series(curve, weights).items():
            curves += [
                base | {"tokens": t, "level": level, "series": str(name), "loss": v}
                for t, v in zip(tokens, losses, strict=True)
            ]
    write_table(pd.DataFrame(speed), root / "curriculum.parquet")
    write_table(pd.DataFrame(curves), root / "curriculum_curves.parquet")
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
    return finish(root, spec, result, report, started, executor)


def documents_of(path: str | Path) -> list[tuple[str, int]]:
    """(domain, doc id) of every document of an ordered training set, in order."""

    table = open_dataset(path).table("train", ["domain", "doc_id"])
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
