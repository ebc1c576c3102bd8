"""Benchmark: divlab's vectorised GINC generator against document-by-document hmmlearn.

Measures tokens/s and peak RSS of

* divlab: the streaming writer of one split (``dataset._generate_split``: vectorised
  sampling, Parquet chunks of ~4M tokens, ground-truth diversity), once with the oracle
  off (like the baseline, which computes no likelihoods) and once with it on; and the
  sampler alone (``sample_documents`` over the same chunks, nothing written);
* the baseline: the method of the reference generator (p-lambda/incontext-learning), one
  hmmlearn ``CategoricalHMM.sample(n_samples=doc_length)`` call per document, with the
  tokens of every document kept in memory. It is slow, so it runs on a subset of the
  documents (``--baseline-docs``) and its tokens/s is reported from that subset.

and checks that divlab's peak RSS stays flat as the number of documents grows. Every
measurement runs in a fresh subprocess, so each peak RSS (``ru_maxrss``) is that run's
own. Settings are the issue's: 5 concepts, vocab 50, 10 values x 10 slots, default family
(value_identity_coeff 0.9, transition_temp 0.1, start_temp 10), 2,000 docs x 10,240
tokens. The targets (divlab >= 100x the baseline's tokens/s, peak RSS < 300 MB and flat)
are printed next to the results, never asserted: timings on a shared machine are noisy.

Run (``make bench`` runs the first)::

    python bench/bench_ginc_sampler.py
    python bench/bench_ginc_sampler.py --quick          # smoke run, a few seconds
    python bench/bench_ginc_sampler.py --docs 4000 --doc-length 2048 --baseline-docs 100
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VOCAB, N_VALUES, N_SLOTS, N_CONCEPTS, SEED = 50, 10, 10, 5, 0
TARGET_SPEEDUP = 100.0
TARGET_RSS_MB = 300.0
FLAT_TOLERANCE = 1.15  # "flat": the largest peak RSS within 15% of the smallest


def _peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (ru_maxrss: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def _run_divlab(docs: int, doc_length: int, oracle: bool) -> dict:
    from divlab.data.ginc.dataset import CHUNK_TOKENS, GincSpec, _generate_split
    from divlab.data.ginc.family import ConceptFamily

    spec = GincSpec.from_dict(
        {
            "family": {"vocab_size": VOCAB, "n_values": N_VALUES, "n_slots": N_SLOTS, "seed": 0},
            "concepts": {"plan": "eval", "n_eval": N_CONCEPTS},
            "seed": SEED,
            "splits": {"train": {"n_docs": docs, "doc_length": doc_length, "oracle": oracle}},
            "prompts": None,
        }
    )
    family = ConceptFamily(spec.family)
    concept_ids = spec.concepts.resolve()
    split = spec.splits["train"]
    rss_imports = _peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="divlab-bench-") as tmp:
        start = time.perf_counter()
        _generate_split(family, concept_ids, "train", split, SEED, Path(tmp) / "train.parquet")
        seconds = time.perf_counter() - start
    docs_per_chunk = max(1, CHUNK_TOKENS // doc_length)
    return {"seconds": seconds, "rss_imports_mb": rss_imports, "docs_per_chunk": docs_per_chunk}


def _run_sampler(docs: int, doc_length: int) -> dict:
    import numpy as np

    from divlab.data.ginc.dataset import CHUNK_TOKENS
    from divlab.data.ginc.family import ConceptFamily, FamilySpec
    from divlab.data.ginc.sampler import sample_documents

    family = ConceptFamily(FamilySpec(vocab_size=VOCAB, n_values=N_VALUES, n_slots=N_SLOTS))
    concepts = family.concepts(range(N_CONCEPTS))
    rng = np.random.default_rng(SEED)
    per_chunk = max(1, CHUNK_TOKENS // doc_length)
    rss_imports = _peak_rss_mb()
    start = time.perf_counter()
    for first in range(0, docs, per_chunk):
        rows = rng.integers(0, N_CONCEPTS, size=min(per_chunk, docs - first))
        sample_documents(family, concepts, rows, doc_length, rng)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_imports_mb": rss_imports}


def _run_baseline(docs: int, doc_length: int) -> dict:
    import numpy as np
    from hmmlearn.hmm import CategoricalHMM

    from divlab.data.ginc.family import ConceptFamily, FamilySpec

    family = ConceptFamily(FamilySpec(vocab_size=VOCAB, n_values=N_VALUES, n_slots=N_SLOTS))
    emission = family.emission_matrix()
    hmms = []
    for i in range(N_CONCEPTS):
        hmm = CategoricalHMM(n_components=family.n_states, n_features=VOCAB)
        hmm.startprob_ = family.concept(i).start
        hmm.transmat_ = family.transition_matrix(i)
        hmm.emissionprob_ = emission
        hmms.append(hmm)
    rss_imports = _peak_rss_mb()

    np.random.seed(SEED)
    rng = np.random.RandomState(SEED)
    documents = []  # every document in memory, as the reference does
    start = time.perf_counter()
    for _ in range(docs):
        hmm = hmms[np.random.randint(N_CONCEPTS)]
        tokens, _states = hmm.sample(n_samples=doc_length, random_state=rng)
        documents.append(tokens.ravel())
    seconds = time.perf_counter() - start
    assert sum(len(d) for d in documents) == docs * doc_length
    return {"seconds": seconds, "rss_imports_mb": rss_imports}


def _child(method: str, docs: int, doc_length: int) -> None:
    if method == "baseline":
        result = _run_baseline(docs, doc_length)
    elif method == "sampler":
        result = _run_sampler(docs, doc_length)
    else:
        result = _run_divlab(docs, doc_length, oracle=method == "divlab-oracle")
    tokens = docs * doc_length
    result.update(
        method=method,
        docs=docs,
        tokens=tokens,
        tokens_per_s=tokens / result["seconds"],
        peak_rss_mb=_peak_rss_mb(),
    )
    print(json.dumps(result))


def _measure(method: str, docs: int, doc_length: int) -> dict:
    """Run one measurement in a fresh interpreter; return what it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", method]
    command += ["--docs", str(docs), "--doc-length", str(doc_length)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{method} run failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(label: str, r: dict) -> str:
    return (
        f"  {label:<22} {r['docs']:>6,} docs  {r['tokens']:>12,} tokens  {r['seconds']:8.2f} s  "
        f"{r['tokens_per_s']:>14,.0f} tokens/s  peak RSS {r['peak_rss_mb']:6.1f} MB "
        f"(after imports {r['rss_imports_mb']:.1f})"
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--docs", type=int, help="documents for divlab (default 2000)")
    parser.add_argument("--doc-length", type=int, help="tokens per document (default 10240)")
    parser.add_argument(
        "--baseline-docs", type=int, help="documents for the slow baseline (default 40)"
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--child",
        choices=["divlab", "divlab-oracle", "sampler", "baseline"],
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args(argv)
    defaults = {"docs": 200, "doc_length": 1024, "baseline_docs": 10} if args.quick else {}
    for name, default in {"docs": 2000, "doc_length": 10240, "baseline_docs": 40}.items():
        if getattr(args, name) is None:
            setattr(args, name, defaults.get(name, default))
    docs, doc_length, baseline_docs = args.docs, args.doc_length, args.baseline_docs

    if args.child:
        _child(args.child, docs, doc_length)
        return

    print(
        f"GINC sampler benchmark: {N_CONCEPTS} concepts, vocab {VOCAB}, "
        f"{N_VALUES} values x {N_SLOTS} slots, {docs:,} docs x {doc_length:,} tokens "
        "(each run in a fresh subprocess)"
    )
    divlab = _measure("divlab", docs, doc_length)
    oracle = _measure("divlab-oracle", docs, doc_length)
    sampler = _measure("sampler", docs, doc_length)
    baseline = _measure("baseline", baseline_docs, doc_length)
    print(_row("divlab (oracle off)", divlab))
    print(_row("divlab (oracle on)", oracle))
    print(_row("divlab sampler only", sampler))
    print(_row("hmmlearn baseline", baseline))
    print(
        f"  (the baseline runs on {baseline_docs:,} of the {docs:,} docs: one "
        "CategoricalHMM.sample per document, as the reference; its tokens/s is from that "
        "subset, and it keeps every document in memory, so its RSS grows with the docs)"
    )

    speedup = divlab["tokens_per_s"] / baseline["tokens_per_s"]
    speedup_oracle = oracle["tokens_per_s"] / baseline["tokens_per_s"]
    speedup_sampler = sampler["tokens_per_s"] / baseline["tokens_per_s"]
    print(
        f"speed-up divlab/baseline: {speedup:,.0f}x oracle off, {speedup_oracle:,.0f}x oracle on, "
        f"{speedup_sampler:,.0f}x sampler only"
        f"  (target >= {TARGET_SPEEDUP:.0f}x, oracle off: {_verdict(speedup >= TARGET_SPEEDUP)})"
    )

    sizes = sorted({max(1, docs // 4), max(1, docs // 2)} - {docs})
    scaling = [_measure("divlab", n, doc_length) for n in sizes] + [divlab]
    print(
        f"divlab peak RSS vs docs (oracle off, {doc_length:,}-token docs, "
        f"Parquet chunks of {divlab['docs_per_chunk']:,} docs):"
    )
    for r in scaling:
        print(f"  {r['docs']:>6,} docs  {r['tokens']:>12,} tokens  {r['peak_rss_mb']:6.1f} MB")
    peaks = [r["peak_rss_mb"] for r in scaling] + [oracle["peak_rss_mb"]]
    growth = max(r["peak_rss_mb"] for r in scaling) / min(r["peak_rss_mb"] for r in scaling)
    print(
        f"  max peak RSS {max(peaks):.1f} MB (oracle on or off; target < {TARGET_RSS_MB:.0f} MB: "
        f"{_verdict(max(peaks) < TARGET_RSS_MB)}); largest/smallest {growth:.2f} "
        f"(flat if <= {FLAT_TOLERANCE}: {_verdict(growth <= FLAT_TOLERANCE)})"
    )


if __name__ == "__main__":
    main()
