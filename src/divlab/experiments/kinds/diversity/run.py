"""The run of ``kind: diversity`` (see the package docstring for the design)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from divlab import seeds
from divlab.curate.dedup import dedup_dataset
from divlab.curate.minhash import settings_for
from divlab.curate.perplexity import perplexity_filter
from divlab.curate.semantic import semantic_dataset
from divlab.data.ginc.dataset import ConceptSetSpec, GincSpec, SplitSpec, generate
from divlab.data.store import open_dataset
from divlab.data.text import prepare_text, read_documents
from divlab.errors import ConfigError, DataError
from divlab.experiments import folder, ids
from divlab.experiments.data import eval_data_spec
from divlab.experiments.executors import Executor, available_cores, executor_for, run_all, share
from divlab.experiments.executors import unfinished as unfinished_runs
from divlab.experiments.kinds.diversity import measures as side_measures
from divlab.experiments.kinds.diversity import plan as planning
from divlab.experiments.kinds.diversity.results import consolidate
from divlab.experiments.kinds.diversity.spec import (
    CurationSpec,
    D4Curation,
    DiversitySpec,
    NearCuration,
    PerplexityCuration,
    SemDedupCuration,
    SideMeasuresSpec,
)
from divlab.experiments.plan import RunGroup, Workload, eval_tokens, probe_model
from divlab.experiments.runs import RunPayload, is_complete, torch_threads
from divlab.io import read_json, write_json
from divlab.measure import alignment, diversity_coefficient, load_probe, probe_documents
from divlab.measure.batches import lengths_problem
from divlab.measure.cache import EmbeddingCache
from divlab.measure.suite import sample_embeddings
from divlab.train import TrainSpec, train

CURATION = TypeAdapter(CurationSpec)


@dataclass
class Layout:
    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    def data(self, condition: planning.Condition) -> Path:
        return self.root / "data" / condition.id

    def eval_data(self, spec: DiversitySpec) -> Path:
        source = {"text": spec.eval.text, "tokenizer": spec.tokenizer, "n_docs": spec.eval.n_docs}
        key = source if spec.is_text else eval_data_spec(spec)
        return self.root / "data" / f"eval-{ids.stable_hash(key, 8)}"

    def measures(self, condition: planning.Condition) -> Path:
        return self.root / "measures" / f"{condition.id}.json"

    def run(self, run: planning.RunPlan) -> Path:
        return self.root / "runs" / run.id


class Experiment:
    """An experiment spec bound to its folder."""

    def __init__(self, spec: DiversitySpec, out: str | Path) -> None:
        self.spec, self.layout = spec, Layout(Path(out))
        self.conditions = planning.conditions(spec)
        self.runs = planning.runs(spec, self.conditions)  # fairness is checked here
        floor = planning.noise_floor_condition(spec)
        known = {c.id for c in self.conditions}
        self.floor = next((c for c in self.conditions if floor and c.id == floor.id), floor)
        self.extra_conditions = [floor] if floor and floor.id not in known else []

    # ---- bookkeeping ---------------------------------------------------------------
    def claim_folder(self) -> None:
        """Create the folder, or check that it holds this same experiment."""
        folder.claim_folder(self.layout.root, self.spec)

    def pending(self) -> list[planning.RunPlan]:
        return [r for r in self.runs if not is_complete(self.layout.run(r))]

    # ---- stages --------------------------------------------------------------------
    def prepare_data(self, log=print) -> None:
        eval_path = self.layout.eval_data(self.spec)
        if not (eval_path / "summary.json").exists():
            log(f"eval set -> {eval_path}")
            if self.spec.is_text:
                self._prepare_text_eval(eval_path)
            else:
                generate(
                    GincSpec.from_dict(eval_data_spec(self.spec)),
                    eval_path,
                    overwrite=True,
                )
        for condition in [*self.conditions, *self.extra_conditions]:
            path = self.layout.data(condition)
            if (path / "summary.json").exists():
                continue
            if condition.curation is not None:  # the raw data now, curated after the probe
                path = self.layout.root / "data" / condition.raw_id
                if (path / "summary.json").exists():
                    continue
            log(f"training set {condition.name} -> {path}")
            if condition.is_text:
                prepare_text(
                    condition.data["text"],
                    path,
                    tokenizer=self.text_tokenizer(),
                    eval_docs=0,
                    seed=self.spec.training_data.seed,
                    overwrite=True,
                )
            else:
                generate(GincSpec.from_dict(condition.data), path, overwrite=True)

    def curate_data(self, probe_info: dict, log=print) -> None:
        """Curated arms: apply each condition's curation to its raw data (a new folder)."""
        for condition in self.conditions:
            curation, path = condition.curation, self.layout.data(condition)
            if curation is None or (path / "summary.json").exists():
                continue
            raw = self.layout.root / "data" / condition.raw_id
            curation = CURATION.validate_python(curation)
            log(f"curate {condition.name} ({curation.method}) -> {path}")
            model = getattr(curation, "model", "probe")
            model = probe_info["source"] if model == "probe" else model
            if isinstance(curation, SemDedupCuration | D4Curation):
                semantic = (
                    {"ratio": curation.ratio}
                    if isinstance(curation, SemDedupCuration)
                    else {"r_dedup": curation.r_dedup, "r_proto": curation.r_proto}
                )
                semantic_dataset(
                    raw, path, curation.method, model, curation.clusters, **semantic,
                    overwrite=True,
                )  # fmt: skip
            elif isinstance(curation, PerplexityCuration):
                if not Path(model).is_dir():
                    raise ConfigError(
                        f"set {condition.name!r}: the perplexity filter needs a model folder; "
                        f"{model!r} is not one (use probe.source: trained or a checkpoint path)"
                    )
                perplexity_filter(
                    raw,
                    path,
                    model,
                    curation.keep_low,
                    curation.keep_high,
                    device=self.spec.device,
                    overwrite=True,
                )
            elif isinstance(curation, NearCuration):
                settings = settings_for(
                    condition.is_text, curation.shingle, curation.n, threshold=curation.threshold
                )
                dedup_dataset(raw, path, "near", settings, verify=curation.verify, overwrite=True)
            else:
                dedup_dataset(raw, path, "exact", None, overwrite=True)

    def text_tokenizer(self) -> str:
        """The tokenizer of a real-text experiment: a path, or (``bpe:N``) the byte-level
        BPE trained on the eval corpus's training split, shared by every training set."""
        if self.spec.tokenizer.startswith("bpe:"):
            return str(self.layout.eval_data(self.spec) / "tokenizer")
        return self.spec.tokenizer

    def _prepare_text_eval(self, path: Path) -> None:
        n_docs = sum(1 for text in read_documents(self.spec.eval.text) if text.strip())
        if n_docs < 2:
            raise DataError(f"the eval corpus {self.spec.eval.text} needs at least 2 documents")
        tokenizer = self.spec.tokenizer
        source = (
            {"vocab_size": int(tokenizer[4:])}
            if tokenizer.startswith("bpe:")
            else {"tokenizer": tokenizer}
        )
        prepare_text(
            self.spec.eval.text,
            path,
            eval_docs=min(self.spec.eval.n_docs, n_docs - 1),
            seed=self.spec.eval.seed,
            overwrite=True,
            **source,
        )

    def prepare_probe(self, log=print) -> dict:
        """Train (once) or name the probe network; return its provenance."""
        spec, probe = self.spec, self.spec.probe
        if probe.source != "trained":
            return {"source": probe.source, "seed": probe.seed, "trained_here": False}
        root = self.layout.root / "probe"
        if spec.is_text:
            data = self.layout.eval_data(spec)
            about = "the eval corpus's training split"
        else:
            data = root / "data"
            ginc = GincSpec(
                family=spec.family,
                concepts=ConceptSetSpec(plan="eval", n_eval=spec.eval.n_concepts),
                seed=seeds.derive_seed(
                    spec.training_data.seed, "probe"
                ),  # no condition's documents
                splits={
                    "train": SplitSpec(
                        n_tokens=probe.token_budget,
                        doc_length=spec.training_data.doc_length,
                        oracle=False,
                    )
                },
                prompts=None,
            )
            if not (data / "summary.json").exists():
                generate(ginc, data, overwrite=True)
            about = f"the {spec.eval.n_concepts} eval concepts"
        train_spec = TrainSpec(
            data=str(data),
            eval_split=None,
            model={"preset": probe.preset},
            token_budget=probe.token_budget,
            seq_len=spec.seq_len,
            batch_tokens=spec.batch_tokens,
            optimizer=spec.optimizer,
            schedule=spec.schedule,
            seed=probe.seed,
            device=spec.device,
        )
        if not (root / "run" / "run.json").exists():
            log(
                f"probe: training a {probe.preset} model on {about} ({probe.token_budget:,} tokens)"
            )
        summary = train(train_spec, root / "run", quiet=True)
        return {
            "source": str(root / "run" / "model"),
            "trained_here": True,
            "description": f"divlab {probe.preset} trained on {about} for "
            f"{summary['tokens_seen']:,} tokens (seed {probe.seed})",
            "final_train_loss": summary["final_train_loss"],
        }

    def check_measurable(self) -> None:
        """Every training set and the eval set hold the diversity batches, checked on the
        prepared data before the probe trains and anything is measured (a GINC spec is
        checked when parsed; a text corpus's document lengths are known only now). With a
        probe of another tokenizer the counts change, and make_batches checks them."""
        m = self.spec.diversity
        if not m.enabled or not self.spec.is_text:
            return
        if self.spec.probe.source != "trained" and not self.spec.probe.source.startswith("random:"):
            return
        sets = [(c.name, self.layout.data(c), "train") for c in self.conditions]
        sets.append(("the eval set", self.layout.eval_data(self.spec), "eval"))
        for name, path, split in sets:
            lengths = [len(d) for d in open_dataset(path).documents(split)]
            problem = lengths_problem(lengths, m.n_batches, m.batch_size, m.seq_len,
                                      m.construction)  # fmt: skip
            if problem:
                raise DataError(
                    f"{name} is too small for the diversity batches: {problem}; lower "
                    "diversity.n_batches / batch_size / seq_len, use construction: blocks "
                    "(documents joined), or add documents"
                )

    def measure(self, probe_info: dict, log=print) -> None:
        """Diversity, alignment with D_eval, ground truth, and the measures beside them
        (``measures``: baselines, eval overlap, coverage and typicality) of every
        condition."""
        todo = [
            c
            for c in [*self.conditions, *self.extra_conditions]
            if not self.layout.measures(c).exists()
        ]
        if not todo:
            return
        eval_path = self.layout.eval_data(self.spec)
        eval_data = open_dataset(eval_path)
        tokenizer = eval_data.summary["tokenizer"]
        enabled = self.spec.diversity.enabled
        if enabled:
            probe = load_probe(
                probe_info["source"],
                vocab_size=tokenizer["vocab_size"],
                special=tokenizer,
                device=self.spec.device,
                seed=self.spec.probe.seed,
            )
            settings = self.spec.diversity.settings()
            eval_documents = probe_documents(eval_data, probe, split="eval")
            # the eval set's embeddings are computed once and reused for every condition
            cache = EmbeddingCache(self.layout.root / "cache" / "embeddings")
        side = self._side_settings()
        eval_tokens = eval_data.documents("eval") if side.enabled else None
        geometry = None  # the eval concepts' bigram geometry, computed once for all
        for condition in todo:
            log(f"measure {condition.name}")
            path = self.layout.data(condition)
            record = {
                "condition": condition.name,
                "data": str(path),
                "ground_truth": _ground_truth(path),
            }
            if enabled:
                documents = probe_documents(path, probe, split="train")
                started = time.perf_counter()
                div = diversity_coefficient(documents, probe, settings, cache)
                seconds = time.perf_counter() - started
                align = alignment(documents, eval_documents, probe, settings, cache)
                record["diversity"] = {k: div[k] for k in div if k != "distance_matrix"}
                record["diversity"]["seconds"] = seconds
                record["alignment"] = {k: align[k] for k in align if k != "cross_distance_matrix"}
                record["probe"] = probe_info.get("description", probe_info["source"])
            if side.enabled:
                data = open_dataset(path)
                train_tokens = data.documents("train")
                embeddings = None
                if enabled:  # the probe's own tokens (a text set is retokenized for it)
                    embeddings = sample_embeddings(
                        documents.documents,
                        probe,
                        side.sample,
                        side.seed,
                        seq_len=settings.seq_len,
                    )
                record["baselines"] = side_measures.condition_measures(
                    train_tokens, eval_tokens, side, data.vocab_size, embeddings
                )
                if not condition.is_text:
                    record["rivals"], geometry = side_measures.ginc_rivals(
                        data.summary, eval_data.summary, geometry
                    )
            write_json(self.layout.measures(condition), record)

    def _side_settings(self) -> SideMeasuresSpec:
        """The ``measures`` settings with ``sample: auto`` resolved: min(256, half the
        smallest training set's documents), one sample size for every condition."""
        side = self.spec.measures
        if side.sample != "auto" or not side.enabled:
            return side
        smallest = min(
            open_dataset(self.layout.data(c)).summary["splits"]["train"]["n_docs"]
            for c in [*self.conditions, *self.extra_conditions]
        )
        return side.model_copy(update={"sample": max(2, min(256, smallest // 2))})

    def payloads(self, threads: int | None = None) -> list[RunPayload]:
        """One payload per run, finished or not (``run_all`` skips finished ones);
        ``threads`` per run, or None to share the cores among the workers."""
        eval_path = str(self.layout.eval_data(self.spec))
        return [
            RunPayload(
                run_id=run.id,
                condition=run.condition.name,
                seed=run.seed,
                out=str(self.layout.run(run)),
                train={k: v for k, v in run.train.items() if k != "evaluation"}
                | {"data": str(self.layout.data(run.condition)), "eval_data": eval_path},
                evaluation=run.train["evaluation"],
                threads=threads,
                logging=tuple(self.spec.logging),
            )
            for run in self.runs
        ]


def run_experiment(
    spec: DiversitySpec,
    out: str | Path,
    *,
    executor: Executor | None = None,
    progress: bool = True,
    report: bool = True,
    log=None,
) -> dict:
    """Run (or resume) the experiment ``spec`` in folder ``out``; return its summary:
    the paths of the results table and report, and how many runs were done now."""
    log = folder.logger(log, progress)
    experiment = Experiment(spec, out)  # validates the plan and fairness before any compute
    check_inputs(spec)  # before the folder is made: a missing corpus leaves nothing behind
    executor = executor or executor_for(spec)
    experiment.claim_folder()
    started = folder.now()
    with torch_threads(available_cores()):  # the stages before the runs have the machine
        experiment.prepare_data(log)
        experiment.check_measurable()
        probe_info = experiment.prepare_probe(log)
        experiment.curate_data(probe_info, log)
        experiment.measure(probe_info, log)

    payloads = experiment.payloads(spec.executor.threads_per_worker)
    pending = unfinished_runs(payloads)
    workers, threads = share(executor, len(pending), spec.executor.threads_per_worker)
    run_all(payloads, executor, progress, "runs", log)
    tables, fields = consolidate(experiment, probe_info)
    result = {"runs": len(experiment.runs), "ran_now": len(pending), **tables}
    executor_info = {"kind": executor.name, "workers": workers, "threads_per_worker": threads}
    return folder.finish(
        experiment.layout.root, spec, result, report, started, executor_info, **fields
    )


def collect(root: str | Path) -> dict:
    """``divlab results``: rebuild the tables (and ``experiment.json``) of the experiment
    folder ``root`` from its run folders, whatever has finished so far."""
    root = Path(root)
    spec = DiversitySpec.from_dict(read_json(root / "spec.json"), source=f"{root}/spec.json")
    tables, fields = consolidate(Experiment(spec, root))
    folder.write_record(root, spec, **fields)
    return tables


def _ground_truth(path: Path) -> dict | None:
    summary = read_json(path / "summary.json")
    split = summary.get("splits", {}).get("train", {})
    return split.get("ground_truth_diversity")


def check_inputs(spec: DiversitySpec) -> None:
    """The files a real-text experiment reads exist: its corpora and its tokenizer (a
    DataError naming the first that does not)."""
    corpora = [("eval.text", path) for path in spec.eval.text or []]
    corpora += [(f"set {s.name!r}", path) for s in spec.plan.sets for path in s.text or []]
    for where, path in corpora:
        if not Path(path).exists():
            raise DataError(f"{where}: corpus {path} does not exist")
    tokenizer = spec.tokenizer
    if tokenizer and not tokenizer.startswith("bpe:") and not Path(tokenizer).exists():
        raise DataError(f"tokenizer {tokenizer} does not exist (give a path, or bpe:N)")


def workload(spec: DiversitySpec) -> Workload:
    """Every condition's runs (and the probe's training), the GINC data, the measurements."""
    conditions = planning.conditions(spec)
    groups, generated = [], eval_tokens(spec)
    probe = spec.probe
    if probe.source == "trained":
        groups.append(RunGroup("probe", 1, probe.token_budget,
                               None if spec.is_text else probe.token_budget,
                               {"preset": probe.preset}))  # fmt: skip
        generated += 0 if spec.is_text else probe.token_budget
    for c in conditions:
        data = None if c.is_text else c.data["splits"]["train"]["n_tokens"]
        budget = c.train_overrides.get("token_budget", spec.token_budget)
        groups.append(RunGroup(c.name, len(spec.seeds), budget, data))
        generated += data or 0
    measured = 0
    if spec.diversity.enabled:  # each condition, the noise floor, the eval set (alignment)
        floor = planning.noise_floor_condition(spec)
        measured = len(conditions) + 1 + (floor is not None and floor.name not in
                                          {c.name for c in conditions})  # fmt: skip
    d = spec.diversity
    notes = ()
    if measured and d.finetune_epochs:
        notes = (
            f"not costed: the probe head's {d.finetune_epochs}-epoch fine-tune per batch "
            "(about that many more forward-backward passes of the head)",
        )
    return Workload(
        tuple(groups),
        generated,
        measured,
        measured * d.n_batches * d.batch_size * d.seq_len,
        probe_model(probe.source, probe.preset),
        notes,
    )


def describe(spec: DiversitySpec) -> list[str]:
    """Each condition (name, plan, concepts, id), then the runs and the recipe."""
    check_inputs(spec)
    experiment = Experiment(spec, Path("runs") / spec.name)  # checks fairness
    lines = [
        f"{c.name}: {c.plan}, {'text' if c.is_text else c.n_concepts} concepts, id {c.id}"
        for c in experiment.conditions
    ]
    return [
        *lines,
        *_design_lines(spec, experiment.conditions),
        f"{len(experiment.runs)} runs ({len(experiment.conditions)} conditions x "
        f"{len(spec.seeds)} seeds), model {spec.model.preset}, "
        f"{spec.token_budget:,} tokens each",
    ]


def _design_lines(spec: DiversitySpec, conditions) -> list[str]:
    """The design's ground-truth correlations, before any training (GINC plans)."""
    if spec.is_text:
        return []
    design = planning.design(spec, conditions)
    if design.get("skipped"):
        return [
            f"design: ground-truth correlations not printed for {design['skipped']:,} "
            f"concepts (above {planning.DESIGN_MAX_CONCEPTS}); the data sets record each "
            "condition's ground truth"
        ]
    correlations = design["correlations"]
    names = {
        "n_concepts": "k",
        "eval_coverage_distance": "coverage distance",
        "train_typicality_distance": "typicality distance",
    }
    lines = []
    for measure, rivals in correlations.items():
        pairs = ", ".join(
            f"{names.get(r, r)} {rho:+.2f}" if rho == rho else f"{names.get(r, r)} n/a"
            for r, rho in rivals.items()
        )
        lines.append(f"design: Spearman of ground-truth {measure} with {pairs}")
    return lines
