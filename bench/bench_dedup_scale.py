"""Benchmark: streaming near dedup of a large raw JSONL corpus in bounded memory.

Writes a synthetic corpus of ``--docs`` documents of about 2 KB (random words from a
20,000-word vocabulary, so two originals share almost no 13-grams) with ``--copies`` of
them replaced by near copies of earlier documents (a few words changed: character
13-gram Jaccard ~0.9 to their source), then runs ``divlab.curate.corpus.dedup_corpus``
on it file to file (SlimPajama settings: char 13-grams, 128 permutations, 9 x 13 bands)
with ``--workers`` processes, in a child process so that its peak memory is its own.

Prints: documents/s end to end and per stage (sign, link and cluster, write), the peak
RSS of the main process and of the largest worker (VmHWM / RUSAGE_CHILDREN), and
precision / recall of the removed documents against the planted copies. Nothing is
asserted; the issue's target is 2,000,000 documents under 2 GB of RSS.

Run: ``python bench/bench_dedup_scale.py --docs 2000000 --workers 2 [--folder /tmp/x]``
(~4 GB of JSONL written to ``--folder``, deleted afterwards unless ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS_PER_DOC = 300  # ~2 KB with words of 2-10 letters


def write_corpus(path: Path, n_docs: int, n_copies: int, seed: int = 0) -> np.ndarray:
    """The corpus as JSONL ({"id", "text", "source"}); returns the planted copies'
    positions. A copy replaces the document at its position and copies an earlier one,
    with 1-4 words changed."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = np.array(
        ["".join(rng.choice(letters, rng.integers(2, 11))) for _ in range(20_000)], dtype=object
    )
    copies = np.sort(rng.choice(np.arange(1, n_docs), n_copies, replace=False))
    is_copy = np.zeros(n_docs, dtype=bool)
    is_copy[copies] = True
    originals: dict[int, np.ndarray] = {}  # only the sources of copies are kept
    sources = {int(c): int(rng.integers(0, c)) for c in copies}
    needed = set(sources.values())
    chunk = 20_000
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n_docs, chunk):
            stop = min(start + chunk, n_docs)
            words = rng.integers(0, len(vocabulary), (stop - start, WORDS_PER_DOC))
            lines = []
            for i in range(start, stop):
                row = words[i - start]
                if is_copy[i]:
                    source = sources[i]
                    row = originals.get(source, row).copy()
                    edits = rng.integers(1, 5)
                    row[rng.integers(0, WORDS_PER_DOC, edits)] = rng.integers(0, len(vocabulary))
                if i in needed:
                    originals[i] = row
                text = " ".join(vocabulary[row])
                lines.append(f'{{"id": {i}, "text": "{text}", "source": "synthetic"}}\n')
            f.writelines(lines)
    # a copy whose source was itself not yet written copies a fresh row: still unique,
    # so the truth is the copies whose source is an original written before them
    planted = np.array([c for c in copies if sources[int(c)] in originals])
    return planted


def run_dedup(corpus: Path, out: Path, workers: int) -> dict:
    """dedup_corpus in a child process; its report plus the child's peak RSS."""
    code = f"""
import json, resource, sys
from divlab.curate.corpus import dedup_corpus
from divlab.curate.minhash import PRESETS
if __name__ == "__main__":
    report = dedup_corpus({str(corpus)!r}, {str(out)!r}, settings=PRESETS["slimpajama"],
                          workers={workers}, overwrite=True, progress=True)
    status = open("/proc/self/status").read().split("\\n")
    hwm = [l for l in status if l.startswith("VmHWM")][0].split()[1]
    report["main_peak_rss_mb"] = int(hwm) / 1024
    report["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(report))
"""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall_seconds"] = time.perf_counter() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--copy-fraction", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the corpus and the output")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="dedup-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.jsonl"
    started = time.perf_counter()
    planted = write_corpus(corpus, args.docs, int(args.copy_fraction * args.docs))
    size = corpus.stat().st_size
    print(f"corpus: {args.docs:,} documents, {size / 2**30:.2f} GiB "
          f"({size / args.docs:,.0f} B/doc), {len(planted):,} planted near copies; "
          f"written in {time.perf_counter() - started:.0f} s")  # fmt: skip
    report = run_dedup(corpus, folder / "out", args.workers)
    import pyarrow.parquet as pq

    removed = pq.read_table(folder / "out" / "curation" / "removed.parquet", columns=["doc_index"])
    removed = set(removed.column(0).to_pylist())
    hits = len(removed & set(planted.tolist()))
    precision = hits / len(removed) if removed else float("nan")
    recall = hits / len(planted) if len(planted) else float("nan")
    seconds = report["seconds"]
    total = sum(seconds.values())
    print(f"dedup_corpus, {args.workers} worker(s): {report['documents_in']:,} docs in "
          f"{total:.0f} s = {report['documents_in'] / total:,.0f} docs/s end to end "
          f"(child wall {report['wall_seconds']:.0f} s)")  # fmt: skip
    for stage, value in seconds.items():
        print(f"  {stage:18s} {value:8.1f} s  {report['documents_in'] / value:12,.0f} docs/s")
    print(f"peak RSS: main process {report['main_peak_rss_mb']:,.0f} MB, largest worker "
          f"{report['worker_peak_rss_mb']:,.0f} MB")  # fmt: skip
    print(f"removed {report['removed']:,}: precision {precision:.4f}, recall {recall:.4f} "
          f"against the planted copies")  # fmt: skip
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"the corpus writer's peak RSS (this process): {own:,.0f} MB")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
