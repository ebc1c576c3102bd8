"""The run of ``kind: sft`` (see the package docstring for the design)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from divlab import seeds
from divlab.data.store import open_dataset, token_lists, write_dataset
from divlab.devices import resolve_device
from divlab.errors import ConfigError
from divlab.evaluate.icl import wilson_interval
from divlab.evaluate.model import load_model
from divlab.experiments.data import ginc_eval_set, ginc_training_set
from divlab.experiments.executors import executor_for, run_all
from divlab.experiments.folder import claim_folder, finish, logger, now
from divlab.experiments.kinds.sft import pool as pools
from divlab.experiments.kinds.sft import selectors
from divlab.experiments.kinds.sft.scoring import score_examples
from divlab.experiments.kinds.sft.spec import Arm, SFTExperimentSpec, arms
from divlab.experiments.plan import RunGroup, Workload, eval_tokens
from divlab.experiments.runs import run_payload
from divlab.io import atomic_file, read_json, write_json, write_table

TABLE = "sft.parquet"
BASE = "base"


# ---- the kind protocol ------------------------------------------------------------------
def describe(spec: SFTExperimentSpec) -> list[str]:
    s = spec.sft
    chosen = arms(s)
    base = (
        f"a base model pre-trained here on {spec.eval.n_concepts} concepts "
        f"({spec.token_budget:,} tokens per seed)"
        if s.base == "pretrain"
        else f"the checkpoint {s.base}"
    )
    return [
        f"SFT: {len(chosen)} arms x seeds {spec.seeds}: {fine_tuning_runs(spec)} fine-tuning "
        f"runs (arms drawing the same examples share one) of {s.token_budget:,} tokens (lr "
        f"{s.lr:g}, loss on "
        f"{' / '.join(s.loss_on)}) from {base}",
        f"pool: {s.pool.size} instruction examples (formats n_examples {s.pool.n_examples} x "
        f"example_length {s.pool.example_lengths}, response lengths {s.pool.response_lengths});"
        f" the selectors' pool has {s.pool.wrong_share:.0%} wrong responses and "
        f"{s.pool.duplicate_share:.0%} duplicates",
        f"arms: quantity N in {s.quantity}; at N = {s.examples}: wrong share in "
        f"{s.wrong_share}, concepts in {s.concepts}, selectors {s.selectors}",
        f"evaluation: exact match and response loss on {s.eval_prompts} held-out prompts of "
        "every eval concept (seen and unseen by each arm), with Wilson CIs",
    ]


def workload(spec: SFTExperimentSpec) -> Workload:
    s = spec.sft
    groups = []
    if s.base == "pretrain":
        corpus = spec.training_data.n_tokens
        groups.append(RunGroup("base model", len(spec.seeds), spec.token_budget, corpus))
    groups.append(RunGroup("fine-tuning", fine_tuning_runs(spec), s.token_budget, None))
    p = s.pool
    n_ex, length = np.mean(p.n_examples), np.mean(p.example_lengths)
    per_example = n_ex * (length + 1) + length - 1 + np.mean(p.response_lengths)
    chosen = sum(_examples(key) for key in {data_key(a, spec) for a in arms(s)})  # shared
    sets = round(per_example * chosen) * len(spec.seeds)  # sft-data/: the chosen examples
    return Workload(
        tuple(groups),
        eval_tokens(spec) + (spec.training_data.n_tokens if s.base == "pretrain" else 0) + sets,
        0,
        0,
        None,
        notes=("not costed: scoring the pool and the held-out prompts with each model",),
    )


def _examples(key: str) -> int:
    return int(key.rsplit("-n", 1)[1])


def fine_tuning_runs(spec: SFTExperimentSpec) -> int:
    keys = {(data_key(arm, spec), arm.loss_on) for arm in arms(spec.sft)}
    return len(keys) * len(spec.seeds)


# ---- the run ----------------------------------------------------------------------------
def run(
    spec: SFTExperimentSpec,
    out: str | Path,
    *,
    executor=None,
    progress: bool = True,
    report: bool = True,
    log=None,
) -> dict:
    """Run (or resume) the SFT experiment ``spec`` in folder ``out``."""
    log = logger(log, progress)
    root = claim_folder(out, spec)
    started = now()
    executor = executor or executor_for(spec)
    s = spec.sft
    concepts = list(range(spec.eval.n_concepts))
    eval_path = ginc_eval_set(spec, root)
    pretrain = ginc_training_set(spec, root, "pretrain", concepts)
    like = open_dataset(pretrain)
    family = like.family

    pool_of = _pools(spec, root, family, concepts)  # cheap: built and checked first
    check_pools(spec, pool_of)
    held_out = _held_out(spec, root, family, concepts)
    bases = _base_models(spec, root, pretrain, eval_path, executor, progress, log)

    # arms that draw the same examples (e.g. quantity N = sft.examples, wrong share 0 and
    # all concepts) share one fine-tuning set and one run per seed and loss
    payloads, index = [], {}
    for seed in spec.seeds:
        for arm in arms(s):
            key = (data_key(arm, spec), arm.loss_on, seed)
            if key in index:
                continue
            data = _fine_tuning_set(spec, root, like, arm, seed, pool_of, bases[seed], log)
            index[key] = len(payloads)
            payloads.append(
                run_payload(
                    spec,
                    root,
                    f"{key[0]}-{arm.loss_on}",
                    data,
                    seed,
                    eval_path,
                    init_from=str(bases[seed]),
                    token_budget=s.token_budget,
                    loss_on=arm.loss_on,
                    optimizer=spec.optimizer.model_dump(mode="json") | {"lr": s.lr},
                )
            )
    records = run_all(payloads, executor, progress, "fine-tuning", log)
    rows = []
    symbols, eos = family.spec.vocab_size, like.eos_token_id
    for seed, base in bases.items():
        cache = root / "evals" / f"base-s{seed}.json"
        score = _evaluate(base, held_out, symbols, eos, spec.device, None, cache)
        rows.append({"plan": BASE, "arm": BASE, "value": None, "loss_on": None, "seed": seed,
                     "run_id": None, **score})  # fmt: skip
    for seed in spec.seeds:
        for arm in arms(s):
            position = index[(data_key(arm, spec), arm.loss_on, seed)]
            payload, record = payloads[position], records[position]
            chosen = open_dataset(payload.train["data"]).table("train").to_pandas()
            seen = sorted(set(chosen.concept))
            cache = root / "evals" / f"{payload.run_id}.json"
            model = Path(payload.out) / "model"
            score = _evaluate(model, held_out, symbols, eos, spec.device, seen, cache)
            rows.append(
                {
                    "plan": arm.plan,
                    "arm": arm.name,
                    "value": str(arm.value),
                    "loss_on": arm.loss_on,
                    "seed": seed,
                    "run_id": record["run_id"],
                    "tokens": record.get("tokens"),
                    "eval_loss": record.get("loss"),
                    **_set_properties(chosen),
                    **score,
                }
            )
    table = root / TABLE
    write_table(pd.DataFrame(rows), table)
    return finish(root, spec, {"tables": {"sft": str(table)}}, report, started)


def _base_models(spec, root, pretrain, eval_path, executor, progress, log) -> dict[int, Path]:
    if spec.sft.base != "pretrain":
        return dict.fromkeys(spec.seeds, Path(spec.sft.base))
    payloads = [run_payload(spec, root, BASE, pretrain, seed, eval_path) for seed in spec.seeds]
    run_all(payloads, executor, progress, "base model", log)
    return {p.seed: Path(p.out) / "model" for p in payloads}


def _pools(spec, root, family, concepts) -> dict:
    """The pools the arms draw from, built once each (``pools/<name>.parquet``): the clean
    pool (quantity, diversity), one per wrong share (quality) and the noisy one
    (selectors). Every pool draws its prompts from the same seed, so they differ only in
    the knob."""
    p, s = spec.sft.pool, spec.sft
    wanted = {"clean": (0.0, 0.0)}
    for share in s.wrong_share:
        if share > 0:
            wanted[f"wrong{share:g}"] = (share, 0.0)
    if s.selectors:
        wanted["noisy"] = (p.wrong_share, p.duplicate_share)
    out = {}
    for name, (wrong, duplicates) in wanted.items():
        path = root / "pools" / f"{name}.parquet"
        if not path.exists():
            frame = pools.build_pool(
                family,
                concepts,
                p.size,
                p.seed,
                n_examples=p.n_examples,
                example_lengths=p.example_lengths,
                response_lengths=p.response_lengths,
                wrong_share=wrong,
                wrong_kind=p.wrong_kind,
                duplicate_share=duplicates,
            )
            write_table(frame, path)
        out[name] = path
    return out


def _held_out(spec, root, family, concepts) -> pd.DataFrame:
    """Held-out prompts of every eval concept, all correct, from their own seed."""
    path = root / "pools" / "held_out.parquet"
    if not path.exists():
        p = spec.sft.pool
        frame = pools.build_pool(
            family,
            concepts,
            spec.sft.eval_prompts,
            seeds.derive_seed(p.seed, 0x4E1D),
            n_examples=p.n_examples,
            example_lengths=p.example_lengths,
            response_lengths=p.response_lengths,
        )
        write_table(frame, path)
    return pd.read_parquet(path)


def data_key(arm: Arm, spec: SFTExperimentSpec) -> str:
    """The examples an arm draws, as a name: arms with the same key draw the same set."""
    s = spec.sft
    n = int(arm.value) if arm.plan == "quantity" else s.examples
    if arm.plan == "quality" and float(arm.value) > 0:
        return f"wrong{float(arm.value):g}-n{n}"
    if arm.plan == "diversity" and int(arm.value) < spec.eval.n_concepts:
        return f"clean-k{arm.value}-n{n}"
    if arm.plan == "selectors":
        return f"noisy-{arm.value}-n{n}"
    return f"clean-n{n}"


def arm_pool(spec: SFTExperimentSpec, arm: Arm, pool_of: dict) -> tuple[pd.DataFrame, int]:
    """The pool an arm draws from and how many examples it draws."""
    s = spec.sft
    pool = pd.read_parquet(pool_of["clean"])
    if arm.plan == "quality" and float(arm.value) > 0:
        pool = pd.read_parquet(pool_of[f"wrong{float(arm.value):g}"])
    elif arm.plan == "diversity":
        pool = pool[pool.concept < int(arm.value)].reset_index(drop=True)
    elif arm.plan == "selectors":
        pool = pd.read_parquet(pool_of["noisy"])
    return pool, int(arm.value) if arm.plan == "quantity" else s.examples


def check_pools(spec: SFTExperimentSpec, pool_of: dict) -> None:
    """Every arm's pool holds its N (after dedup for the selectors; the wrong and right
    examples a stratified draw needs), checked before any training."""
    for arm in arms(spec.sft):
        pool, n = arm_pool(spec, arm, pool_of)
        have = len(pool)
        if arm.plan == "selectors" and spec.sft.dedup_first:
            have = len(selectors.dedup(pool)[0])
        if arm.plan == "quality" and float(arm.value) > 0:
            n_wrong = round(float(arm.value) * n)
            right, wrong = int(pool.correct.sum()), int((~pool.correct).sum())
            if n_wrong > wrong or n - n_wrong > right:
                have = 0
        if n > have:
            raise ConfigError(
                f"arm {arm.name} draws {n} examples but its pool holds {have} (the pool of "
                f"{len(pool)} after its filter); raise sft.pool.size or lower sft.examples"
            )


def _fine_tuning_set(spec, root, like, arm: Arm, seed: int, pool_of, base: Path, log) -> Path:
    """The N examples of ``arm`` for ``seed``, as a data set (``sft-data/<key>-s<seed>``:
    tokens = prompt + response, ``prompt_length``, the pool's ground-truth columns and the
    selector's ``reason``)."""
    path = root / "sft-data" / f"{data_key(arm, spec)}-s{seed}"
    if (path / "summary.json").exists():
        return path
    pool, n = arm_pool(spec, arm, pool_of)
    name = "random" if arm.plan != "selectors" else str(arm.value)
    log(f"selecting {n} examples for {arm.plan}={arm.value}, seed {seed} ({name})")
    rng = seeds.rng(seed, "sft selection")
    if arm.plan != "selectors":
        # one seeded permutation of the pool per seed: the LIMA curve's sets are nested
        # (N = 32 is the start of N = 128), and a wrong share is exact (stratified)
        order = rng.permutation(len(pool))
        if arm.plan == "quality" and float(arm.value) > 0:
            n_wrong = round(float(arm.value) * n)
            wrong = order[~pool.correct.to_numpy()[order]][:n_wrong]
            right = order[pool.correct.to_numpy()[order]][: n - n_wrong]
            indices = np.sort(np.concatenate([wrong, right]))
            reasons = np.array([f"random, {n_wrong} wrong of {n} (stratified)"] * n)
        else:
            indices = order[:n]
            reasons = np.array(["random (a prefix of the seed's permutation)"] * n)
    else:
        extra = {}
        if name in ("quality", "quality-diversity", "k-center"):
            scores = _base_scores(spec, root, pool_of["noisy"], base, seed, like)
            extra["quality"] = -scores["response_nll"]
            extra["embeddings"] = scores["embeddings"]
        chosen = selectors.select(
            name,
            pool,
            n,
            seed=seeds.derive_seed(seed, 0x5E1),
            dedup_first=spec.sft.dedup_first,
            **extra,
        )
        indices = chosen.indices
        reasons = chosen.reasons["reason"].astype(str).to_numpy()
    picked = pool.iloc[indices].reset_index(drop=True)
    tokens = [
        np.concatenate([np.asarray(p, np.int64), np.asarray(r, np.int64)])
        for p, r in zip(picked.prompt, picked.response, strict=True)
    ]
    table = pa.table(
        {
            "doc_id": pa.array(np.arange(len(picked)), pa.int64()),
            "tokens": token_lists(tokens),
            "prompt_length": pa.array([len(p) for p in picked.prompt], pa.int64()),
            "example_id": pa.array(picked.example_id.to_numpy(), pa.int64()),
            "concept": pa.array(picked.concept.to_numpy(), pa.int64()),
            "correct": pa.array(picked.correct.to_numpy(), pa.bool_()),
            "response_length": pa.array(picked.response_length.to_numpy(), pa.int64()),
            "duplicate_of": pa.array(picked.duplicate_of.to_numpy(), pa.int64()),
            "reason": pa.array(reasons, pa.string()),
        }
    )
    write_dataset(
        path,
        like,
        {"train": table},
        provenance={"arm": arm.name, "plan": arm.plan, "value": str(arm.value), "seed": seed},
    )
    return path


def _base_scores(spec, root, pool_path: Path, base: Path, seed: int, like) -> dict:
    """The base model's response loss and embeddings on the noisy pool (cached)."""
    path = root / "scores" / f"base-s{seed}.npz"
    if path.exists():
        with np.load(path) as data:
            return dict(data)
    pool = pd.read_parquet(pool_path)
    model = load_model(base, str(resolve_device(spec.device)))
    scores = score_examples(
        model, list(pool.prompt), list(pool.response), like.eos_token_id,
        like.family.spec.vocab_size, embed=True,
    )  # fmt: skip
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **scores)
    return scores


def _evaluate(model_dir: Path, held_out, symbols, eos, device, seen, file: Path) -> dict:
    """Exact match of the first response token and the response loss on the held-out
    prompts, overall and on the concepts the arm saw / did not see (cached in ``file``)."""
    key = sorted(seen) if seen is not None else None
    if file.exists():
        cached = read_json(file)
        if cached.get("seen") == key:
            return cached["scores"]
    model = load_model(model_dir, str(resolve_device(device)))
    result = score_examples(model, list(held_out.prompt), list(held_out.bayes_response), eos,
                            symbols)  # fmt: skip
    first = np.array([r[0] for r in held_out.bayes_response])
    hits = result["predicted"] == first
    scores = {"response_loss": float(result["response_nll"].mean())}
    parts = {"accuracy": np.ones(len(hits), bool)}
    if seen is not None:
        is_seen = held_out.concept.isin(seen).to_numpy()
        parts |= {"accuracy_seen": is_seen, "accuracy_unseen": ~is_seen}
    for name, mask in parts.items():
        count, correct = int(mask.sum()), int(hits[mask].sum())
        low, high = wilson_interval(correct, count)
        scores |= {
            name: correct / count if count else None,
            f"{name}_ci_low": low if count else None,
            f"{name}_ci_high": high if count else None,
            f"{name}_prompts": count,
        }
    write_json(file, {"seen": key, "scores": scores})
    return scores


def _set_properties(chosen: pd.DataFrame) -> dict:
    """What the fine-tuning set holds (ground truth)."""
    return {
        "n_chosen": len(chosen),
        "wrong_share_chosen": float(1 - chosen.correct.mean()),
        "duplicates_chosen": int((chosen.duplicate_of >= 0).sum()),
        "concepts_chosen": int(chosen.concept.nunique()),
        "mean_response_length": float(chosen.response_length.mean()),
    }
