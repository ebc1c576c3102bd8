"""The run of ``kind: collapse`` (see the package docstring for the design)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import GenerationConfig

from divlab import seeds
from divlab.data.ginc.oracle import forward
from divlab.data.store import open_dataset, token_lists, write_dataset
from divlab.devices import resolve_device
from divlab.errors import DataError
from divlab.evaluate.model import load_model
from divlab.experiments.data import ginc_eval_set, ginc_training_set
from divlab.experiments.executors import executor_for, run_all
from divlab.experiments.folder import claim_folder, finish, logger, now
from divlab.experiments.kinds.collapse import chains, workflows
from divlab.experiments.kinds.collapse.spec import (
    TABLES,
    Arm,
    CollapseExperimentSpec,
    CollapseLMSpec,
    arm_name,
    arms,
    n_documents,
    window,
)
from divlab.experiments.plan import RunGroup, Workload, eval_tokens, probe_model
from divlab.experiments.runs import run_payload
from divlab.io import read_json, write_json, write_table
from divlab.measure import baselines, diversity_coefficient, load_probe, suite

GENERATE_BATCH = 128  # documents per generate() call
BASELINE_SAMPLE = 128  # documents per corpus for the probe-free measures (at most)


# ---- the kind protocol ------------------------------------------------------------------


def describe(spec: CollapseExperimentSpec) -> list[str]:
    part = spec.collapse
    lines = []
    if part.gaussian:
        g = part.gaussian
        lines.append(
            f"Gaussian chain: {len(g.sizes)} fits of M = {_sizes_text(g.sizes)}, {g.chains} "
            f"chains, {'known' if g.known_variance else g.estimator} variance; workflows "
            f"{', '.join(g.workflows)}"
        )
    if part.regression:
        r = part.regression
        lines.append(
            f"regression chain: T = {r.T} rows, d = {r.d} features, {r.generations} fits, "
            f"{r.chains} chains; workflows {', '.join(r.workflows)}"
        )
    if part.discrete:
        d = part.discrete
        lines.append(
            f"discrete chain: {len(d.start)} states, {len(d.sizes)} fits of M = "
            f"{_sizes_text(d.sizes)}, {d.chains} chains"
        )
    if part.lm:
        lm = part.lm
        later = arms(lm)
        runs = len(spec.seeds) * (1 + (lm.generations - 1) * len(later))
        how = {
            "sample": f"sampling (temperature {lm.temperature:g}, top-p {lm.top_p:g})",
            "greedy": "greedy decoding",
            "beam": f"beam search ({lm.num_beams} beams)",
        }[lm.decoding]
        last = lm.generations - 1
        lines += [
            f"LM recursion: {lm.generations} generations x {len(later)} arms x seeds "
            f"{spec.seeds} = {runs} runs (generation 0 shared)",
            *(f"  {a.name}: {_arm_text(a, spec, last)}" for a in later),
            f"corpora: {n_documents(spec)} documents of {spec.training_data.doc_length} tokens "
            f"by {how}, prompt {lm.prompt_tokens or '<eos>'}",
        ]
    return lines


def _arm_text(arm: Arm, spec: CollapseExperimentSpec, last: int) -> str:
    budget = f"{spec.token_budget:,} tokens"
    if arm.workflow == "replace":
        return f"replace, keeping {arm.real_fraction:.0%} of the real documents; {budget}"
    if arm.workflow == "accumulate":
        return (
            f"real + every synthetic corpus; {budget} x the pool's size in corpora "
            f"(up to {arm.budget(spec, last):,})"
        )
    if arm.workflow == "accumulate-fixed":
        return f"real + every synthetic corpus; {budget} (the pool seen in part)"
    return (
        f"{arm.pool_docs(spec, 1)} documents drawn from the accumulated pool each "
        f"generation; {budget}"
    )


def workload(spec: CollapseExperimentSpec) -> Workload:
    """The LM recursion's runs (the analytic chains cost nothing worth planning)."""
    lm = spec.collapse.lm
    if lm is None:
        return Workload(())
    length = spec.training_data.doc_length
    corpus = n_documents(spec) * length
    groups = [RunGroup("generation 0", len(spec.seeds), spec.token_budget, corpus)]
    alike: dict[tuple[int, int], list[str]] = {}  # (budget, data tokens) -> runs' names
    for arm in arms(lm):
        for generation in range(1, lm.generations):
            key = (arm.budget(spec, generation), arm.pool_docs(spec, generation) * length)
            alike.setdefault(key, []).append(f"{arm.name}-g{generation}")
    pools = sum(  # pools/ copies the documents an accumulating generation trains on
        arm.pool_docs(spec, g) * length * len(spec.seeds)
        for arm in arms(lm)
        if arm.accumulates
        for g in range(1, lm.generations)
    )
    later = 0
    for (budget, data), names in alike.items():
        later += len(names) * len(spec.seeds)
        label = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)})"
        groups.append(RunGroup(label, len(names) * len(spec.seeds), budget, data))
    d = lm.diversity
    measured = (1 + later) if d.enabled else 0
    return Workload(
        tuple(groups),
        eval_tokens(spec) + (1 + later) * corpus + pools,
        measured,
        measured * d.n_batches * d.batch_size * d.seq_len,
        probe_model(lm.probe),
        notes=(
            f"not costed: sampling the {later} synthetic corpora of {corpus:,} tokens from "
            "the models (one forward pass per generated token with the KV cache)",
        ),
    )


def _sizes_text(sizes: list[int]) -> str:
    if len(set(sizes)) == 1:
        return str(sizes[0])
    return str(sizes) if len(sizes) <= 4 else f"[{sizes[0]}, {sizes[1]}, ..., {sizes[-1]}]"


def run(
    spec: CollapseExperimentSpec,
    out: str | Path,
    *,
    executor=None,
    progress: bool = True,
    report: bool = True,
    log=None,
) -> dict:
    """Run (or resume) the collapse experiment ``spec`` in folder ``out``."""
    log = logger(log, progress)
    root = claim_folder(out, spec)
    started = now()
    tables = analytic_tables(spec, root)
    if spec.collapse.lm is not None:
        executor = executor or executor_for(spec)
        tables["lm"] = str(run_recursion(spec, root, executor, progress, log))
    return finish(root, spec, {"tables": tables}, report, started, tables=tables)


# ---- the analytic chains ----------------------------------------------------------------
def analytic_tables(spec: CollapseExperimentSpec, root: Path) -> dict[str, str]:
    """Simulate the enabled chains (once: a table on disk is kept)."""
    tables = {}
    g, d = spec.collapse.gaussian, spec.collapse.discrete
    if g is not None:
        path = root / TABLES["gaussian"]
        if not path.exists():
            write_table(gaussian_table(g), path)
        tables["gaussian"] = str(path)
    r = spec.collapse.regression
    if r is not None:
        path = root / TABLES["regression"]
        if not path.exists():
            frames = [
                workflows.regression_workflow(
                    w, r.T, r.d, r.generations, r.chains, r.sigma, _subsample(w, r), r.seed
                )
                for w in r.workflows
            ]
            write_table(pd.concat(frames, ignore_index=True), path)
        tables["regression"] = str(path)
    if d is not None:
        path, absorption = root / TABLES["discrete"], root / TABLES["absorption"]
        probabilities = d.start.tolist()
        if not path.exists():
            frame = chains.discrete_chain(
                d.sizes, None, d.chains, probabilities, None, d.tail_quantile, d.seed
            )
            write_table(frame, path)
        if not absorption.exists():
            frame = chains.discrete_absorption(d.sizes, None, d.chains, probabilities, None, d.seed)
            write_table(frame, absorption)
        tables["discrete"], tables["absorption"] = str(path), str(absorption)
    return tables


def gaussian_table(g) -> pd.DataFrame:
    """The Gaussian chain: the replace workflow as before workflows existed (M may be a
    schedule), else one block of rows per workflow (``workflow`` column)."""
    if g.workflows == ["replace"] and not g.known_variance:
        frame = chains.gaussian_chain(g.sizes, None, g.chains, g.mu, g.sigma, g.estimator, g.seed)
        return frame.assign(workflow="replace")
    frames = [
        workflows.gaussian_workflow(
            w,
            g.M,
            len(g.sizes),
            g.chains,
            g.mu,
            g.sigma,
            g.estimator,
            g.known_variance,
            _subsample(w, g),
            g.seed,
        )
        for w in g.workflows
    ]
    return pd.concat(frames, ignore_index=True)


def _subsample(workflow: str, chain) -> int | None:
    return chain.subsample if workflow == "accumulate-subsample" else None


# ---- the language-model recursion -------------------------------------------------------
def run_recursion(spec: CollapseExperimentSpec, root: Path, executor, progress, log) -> Path:
    """Train generation after generation; return the path of ``collapse.parquet``."""

    # The driver's stages (sampling, measures) keep the caller's torch threads: their
    # models are small, and more threads than free cores make them many times slower.
    lm = spec.collapse.lm
    eval_path = ginc_eval_set(spec, root)
    real_path = ginc_training_set(spec, root, "real", list(range(spec.eval.n_concepts)))
    real = open_dataset(real_path)
    context = _Context(spec, root, real)
    measures = {real_path: context.measure("real", real_path)}
    chains_ = arms(lm)
    data = {(arm, s): real_path for arm in chains_ for s in spec.seeds}  # what each trains on
    synthetic: dict[tuple, list[Path]] = {key: [] for key in data}  # accumulated corpora
    newest = dict(data)  # the corpus sampled for each arm's latest generation
    rows = []
    for generation in range(lm.generations):
        payloads, keys = [], []
        for seed in spec.seeds:
            if generation == 0:  # real data: one run shared by the arms
                payloads.append(run_payload(spec, root, "g0", real_path, seed, eval_path))
                keys.append([(arm, seed) for arm in chains_])
                continue
            for arm in chains_:
                overrides = {}
                if arm.budget(spec, generation) != spec.token_budget:
                    overrides["token_budget"] = arm.budget(spec, generation)
                name = f"{arm.name}-g{generation}"
                path = data[(arm, seed)]
                payloads.append(run_payload(spec, root, name, path, seed, eval_path, **overrides))
                keys.append([(arm, seed)])
        records = run_all(payloads, executor, progress, f"generation {generation}", log)
        models = {}
        for payload, record, chain in zip(payloads, records, keys, strict=True):
            for arm, seed in chain:
                path = data[(arm, seed)]
                rows.append(
                    {
                        "arm": arm.name,
                        "workflow": arm.workflow,
                        "real_fraction": arm.real_fraction,
                        "seed": seed,
                        "generation": generation,
                        "run_id": record["run_id"],
                        "corpus": str(path),
                        "token_budget": payload.train["token_budget"],
                        **_run_metrics(record),
                        **measures[path],
                        **{
                            f"generated_{key}": measures[newest[(arm, seed)]].get(key)
                            for key in GENERATED
                        },
                    }
                )
                models[(arm, seed)] = Path(payload.out) / "model"
        if generation + 1 == lm.generations:
            break
        for (arm, seed), model in models.items():
            following = generation + 1
            if arm.workflow == "replace":
                path = corpus = context.corpus(model, arm.real_fraction, seed, following, log)
            else:
                # generation 1 samples the shared generation-0 model with replace's seeds:
                # the same corpus as real0's, so written once and shared
                name = f"{arm.name}-s{seed}-g{following}" if following > 1 else None
                corpus = context.corpus(model, 0.0, seed, following, log, name=name)
                synthetic[(arm, seed)].append(corpus)
                path = context.pool(arm, seed, following, synthetic[(arm, seed)])
                if corpus not in measures:
                    measures[corpus] = context.measure(corpus.name, corpus)
            data[(arm, seed)], newest[(arm, seed)] = path, corpus
            label = path.name if path.parent.name == "corpora" else f"pool-{path.name}"
            measures[path] = context.measure(label, path)
    table = root / TABLES["lm"]
    write_table(pd.DataFrame(rows), table)
    return table


# measures of the corpus newly sampled for a generation (``generated_<key>``; generation 0:
# the real corpus), beside those of all the data it trains on
GENERATED = (
    "tail_mass",
    "concepts_covered",
    "concept_entropy",
    "assignment_nll",
    "diversity",
    "vendi_ngram",
    "distinct_n",
    "compression_ratio",
)
RUN_METRICS = ("loss", "perplexity", "gap", "oracle_loss", "icl_accuracy", "edit_distance")


def _run_metrics(record: dict) -> dict:
    return {key: record.get(key) for key in (*RUN_METRICS, "tokens", "train_seconds")}


class _Context:
    """What every corpus of one experiment shares: the real corpus, its tail, the
    concepts and the probe."""

    def __init__(self, spec: CollapseExperimentSpec, root: Path, real) -> None:
        self.spec, self.lm, self.root, self.real = spec, spec.collapse.lm, root, real
        self.family = real.family
        self.concepts = real.concept_ids
        self.symbols = self.family.spec.vocab_size
        table = real.table("train", ["tokens", "concept"])
        self.real_tokens = _token_matrix(table.column("tokens"))
        self.real_concepts = table.column("concept").to_numpy()
        self.tail = chains.tail_set(self.unigram(self.real_tokens), self.lm.tail_quantile)
        self.real_assigned, self.real_nll = self.assign(self.real_tokens)
        smallest = min(len(self.real_tokens), self.lm.subsample_docs or len(self.real_tokens))
        self.baseline_sample = max(2, min(BASELINE_SAMPLE, smallest // 2))
        self._probe = None

    def unigram(self, tokens: np.ndarray) -> np.ndarray:
        return np.bincount(tokens.ravel(), minlength=self.symbols)[: self.symbols]

    # -- corpora ------------------------------------------------------------------------
    def corpus(
        self, model_dir: Path, fraction: float, seed: int, generation: int, log, name=None
    ) -> Path:
        """Generation ``generation``'s corpus sampled from ``model_dir`` with a share
        ``fraction`` of real documents, in ``corpora/<name>`` (default: the replace arm's
        ``real<fraction>-s<seed>-g<generation>``); skipped when on disk."""

        name = name or f"{arm_name(fraction)}-s{seed}-g{generation}"
        path = self.root / "corpora" / name
        if (path / "summary.json").exists():
            return path
        n_docs = len(self.real_tokens)
        n_real = round(fraction * n_docs)
        rng = seeds.rng(seed, generation, 0xC011)
        order = rng.permutation(n_docs)  # shared by the arms of a seed
        kept = np.sort(order[:n_real])
        prompts = self.real_tokens[order[n_real:], : self.lm.prompt_tokens]  # docs not kept
        log(f"sampling {n_docs - n_real} documents for {path.name}")
        generated = sample_documents(
            model_dir,
            prompts,
            self.spec.training_data.doc_length,
            self.lm,
            seq_len=self.spec.seq_len,
            window=window(self.spec),
            eos=self.real.eos_token_id,
            pad=self.real.summary["tokenizer"].get("pad_token_id"),
            symbols=self.symbols,
            vocab_size=self.real.vocab_size,
            seed=seeds.derive_seed(seed, generation, 0x5A3),
            device=self.spec.device,
        )
        tokens = np.concatenate([generated, self.real_tokens[kept]])
        assigned, nll = self.assign(generated)
        source = ["generated"] * len(generated) + ["real"] * n_real
        concept = np.concatenate([np.full(len(generated), -1), self.real_concepts[kept]])
        table = pa.table(
            {
                "doc_id": pa.array(np.arange(len(tokens)), pa.int64()),
                "tokens": token_lists(tokens),
                "source": pa.array(source, pa.string()),
                "concept": pa.array(concept, pa.int64()),
                "assigned_concept": pa.array(
                    np.concatenate([assigned, self.real_assigned[kept]]), pa.int64()
                ),
                "assignment_nll": pa.array(np.concatenate([nll, self.real_nll[kept]])),
            }
        )
        write_dataset(
            path,
            self.real,
            {"train": table},
            provenance={
                "model": str(model_dir),
                "generation": generation,
                "real_fraction": fraction,
                "seed": seed,
                "decoding": self.lm.model_dump(
                    include={"decoding", "temperature", "top_p", "num_beams", "prompt_tokens"}
                ),
            },
        )
        return path

    def pool(self, arm: Arm, seed: int, generation: int, corpora: list[Path]) -> Path:
        """What generation ``generation`` of an accumulating arm trains on, in
        ``pools/<arm>-s<seed>-g<generation>``: the real documents and every synthetic
        corpus so far (``origin``: ``real`` or the corpus's name; ``origin_doc_id``), or
        for ``accumulate-subsample`` a uniform draw without replacement of
        ``subsample_docs`` of them (seeded by run seed and generation, in pool order)."""
        path = self.root / "pools" / f"{arm.name}-s{seed}-g{generation}"
        if (path / "summary.json").exists():
            return path
        parts = [self.real_table] + [
            _with_origin(open_dataset(c).table("train"), c.name) for c in corpora
        ]
        table = pa.concat_tables([p.select(parts[0].column_names) for p in parts])
        pool_docs = len(table)
        if arm.workflow == "accumulate-subsample":
            size = arm.pool_docs(self.spec, generation)
            if size > pool_docs:  # the spec's check covers the first pool; pools only grow
                raise DataError(f"{path.name}: subsample of {size} from a pool of {pool_docs}")
            chosen = seeds.rng(seed, generation, 0x5B5).choice(pool_docs, size, replace=False)
            table = table.take(pa.array(np.sort(chosen)))
        table = table.set_column(0, "doc_id", pa.array(np.arange(len(table)), pa.int64()))
        write_dataset(
            path,
            self.real,
            {"train": table},
            provenance={
                "workflow": arm.workflow,
                "generation": generation,
                "seed": seed,
                "pool_docs": pool_docs,
                "corpora": ["real", *(c.name for c in corpora)],
            },
        )
        return path

    @cached_property
    def real_table(self) -> pa.Table:
        """The real corpus with the columns of a generated one (built once: every pool
        starts with it)."""
        n = len(self.real_tokens)
        return pa.table(
            {
                "doc_id": pa.array(np.arange(n), pa.int64()),
                "tokens": token_lists(self.real_tokens),
                "source": pa.array(["real"] * n, pa.string()),
                "concept": pa.array(self.real_concepts, pa.int64()),
                "assigned_concept": pa.array(self.real_assigned, pa.int64()),
                "assignment_nll": pa.array(self.real_nll),
                "origin": pa.array(["real"] * n, pa.string()),
                "origin_doc_id": pa.array(np.arange(n), pa.int64()),
            }
        )

    # -- measures -----------------------------------------------------------------------
    def assign(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return assign_concepts(self.family, self.concepts, tokens, self.lm.assignment_noise)

    def measure(self, name: str, path: Path) -> dict:
        """The measures of one corpus (module docstring), cached in ``measures/``."""

        file = self.root / "measures" / f"{name}.json"
        if file.exists():
            return read_json(file)
        dataset = open_dataset(path)
        table = dataset.table("train")
        tokens = _token_matrix(table.column("tokens"))
        if "assignment_nll" in table.column_names:  # assigned when the corpus was written
            assigned = table.column("assigned_concept").to_numpy()
            nll = table.column("assignment_nll").to_numpy()
        elif name == "real":
            assigned, nll = self.real_assigned, self.real_nll
        else:  # a corpus written before the assignment was stored with it
            assigned, nll = self.assign(tokens)
        generated = (
            int(pc.sum(pc.equal(table.column("source"), "generated")).as_py() or 0)
            if "source" in table.column_names
            else 0
        )
        result = {
            "n_docs": len(tokens),
            "generated_docs": generated,
            "real_share": 1.0 - generated / len(tokens),
            "tail_mass": float(chains.tail_mass(self.unigram(tokens), self.tail)),
            **coverage(assigned),
            **{f"concept_share_{c}": float((assigned == c).mean()) for c in self.concepts},
            "assignment_nll": float(nll.mean()),
            "assignment_accuracy": (
                float((assigned == self.real_concepts).mean()) if name == "real" else None
            ),
            **self.diversity(dataset),
            **self.baselines(tokens),
        }
        write_json(file, result)
        return result

    def baselines(self, tokens: np.ndarray) -> dict:
        """The probe-free measures of issue 14 on one seeded sample of the same number of
        documents for every corpus (a pool grows; Vendi and distinct-n move with size)."""
        sample, seed = self.baseline_sample, self.lm.diversity.seed
        documents = list(tokens)
        same_size = suite.fixed_sample(documents, sample, seed)  # a seeded draw, any order
        results = {
            "vendi_ngram": baselines.vendi_ngram(documents, sample=sample, seed=seed),
            "distinct_n": baselines.distinct_n(same_size, seed=seed),
            "compression_ratio": baselines.compression_ratio(
                same_size, vocab_size=self.real.vocab_size, seed=seed
            ),
        }
        out = {}
        for name, result in results.items():
            low, high = result["ci"] or (None, None)
            out |= {name: result["value"], f"{name}_ci_low": low, f"{name}_ci_high": high}
        return out

    def diversity(self, dataset) -> dict:
        empty = {"diversity": None, "diversity_ci_low": None, "diversity_ci_high": None}
        if not self.lm.diversity.enabled:
            return empty

        settings = self.lm.diversity.settings()
        if self._probe is None:
            self._probe = load_probe(
                self.lm.probe,
                vocab_size=dataset.vocab_size,
                special=dataset.summary["tokenizer"],
                device=self.spec.device,
                seed=settings.seed,
            )
        result = diversity_coefficient(dataset, self._probe, settings)
        low, high = result["ci95"]
        return {
            "diversity": result["diversity"],
            "diversity_ci_low": low,
            "diversity_ci_high": high,
        }


def _with_origin(table: pa.Table, corpus: str) -> pa.Table:
    """A generated corpus's table with ``origin`` (its name) and ``origin_doc_id``."""
    n = len(table)
    table = table.append_column("origin", pa.array([corpus] * n, pa.string()))
    return table.append_column("origin_doc_id", table.column("doc_id"))


def _token_matrix(column) -> np.ndarray:
    """A list column of equal-length documents as an (N, L) int64 array."""
    column = column.combine_chunks()
    values = column.flatten().to_numpy().astype(np.int64)
    return values.reshape(len(column), -1)


def assign_concepts(
    family, concept_ids: list[int], tokens: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each document's most likely concept among ``concept_ids`` (forward algorithm through
    a substitution channel of rate ``noise``) and its per-token NLL under it (nats)."""

    arrays = family.concepts(concept_ids)
    tokens = np.asarray(tokens)
    scores = np.stack(
        [
            forward(family, arrays, np.full(len(tokens), c), tokens, noise)[0]
            for c in range(len(concept_ids))
        ]
    )  # (C, D)
    best = scores.argmax(axis=0)
    ids = np.asarray(concept_ids)[best]
    return ids, -scores[best, np.arange(len(tokens))] / tokens.shape[1]


def coverage(assigned: np.ndarray) -> dict:
    """``concepts_covered`` (distinct assigned concepts) and ``concept_entropy`` (nats) of
    the assignment's histogram."""
    _, counts = np.unique(assigned, return_counts=True)
    shares = counts / counts.sum()
    return {
        "concepts_covered": len(counts),
        "concept_entropy": float(-(shares * np.log(shares)).sum()),
    }


def sample_documents(
    model_dir: Path,
    prompts: np.ndarray,
    length: int,
    lm: CollapseLMSpec,
    *,
    seq_len: int,
    window: int,
    eos: int,
    pad: int | None,
    symbols: int,
    vocab_size: int,
    seed: int,
    device: str = "auto",
) -> np.ndarray:
    """(N, ``length``) tokens: the continuation of each prompt row (an empty prompt means
    ``<eos>``), generated by ``model_dir`` in segments of at most ``seq_len`` positions
    with ids ``>= symbols`` suppressed (module docstring)."""

    n_docs = len(prompts)
    out = np.empty((n_docs, length), dtype=np.int64)
    if n_docs == 0:  # an arm that keeps only real data
        return out
    target = resolve_device(device)
    model = load_model(model_dir, str(target))
    if prompts.shape[1] == 0:
        prompts = np.full((n_docs, 1), eos, dtype=np.int64)
    decoding = {
        "sample": {"do_sample": True, "temperature": lm.temperature, "top_p": lm.top_p, "top_k": 0},
        "greedy": {"do_sample": False},
        "beam": {"do_sample": False, "num_beams": lm.num_beams},
    }[lm.decoding]
    cuda = [torch.cuda.current_device()] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # leave the caller's RNG as it was
        torch.manual_seed(seed)
        for first in range(0, n_docs, GENERATE_BATCH):
            ids = torch.as_tensor(prompts[first : first + GENERATE_BATCH], device=target)
            done = 0
            while done < length:
                context = ids[:, -window:]
                new = min(seq_len - context.shape[1], length - done)
                config = GenerationConfig(
                    max_new_tokens=new,
                    min_new_tokens=new,
                    suppress_tokens=list(range(symbols, vocab_size)),
                    pad_token_id=pad,
                    eos_token_id=eos,
                    **decoding,
                )
                with torch.no_grad():
                    result = model.generate(
                        input_ids=context,
                        attention_mask=torch.ones_like(context),
                        generation_config=config,
                    )
                ids = torch.cat([ids, result[:, context.shape[1] :]], dim=1)
                done += new
            out[first : first + len(ids)] = ids[:, -length:].cpu().numpy()
    return out
