"""SemDeDup over a folder of Parquet shards, locally or on Ray Data.

(Near dedup of shards is :func:`divlab.curate.corpus.dedup_corpus`, which reads the same
folders, streams, and writes the kept rows back as Parquet.)

The sentence embeddings are computed per shard, in parallel. Each shard's result is
written to ``OUT/<stage>/<shard>.parquet`` through a temporary name and a rename — the
file's presence is the shard's completion marker, so a relaunch skips finished shards and
redoes only one that was killed. On Ray, a shard is read and processed by Ray Data
(``read_parquet`` + ``map_batches``). The global step runs on one node from the small
per-document table: k-means and SemDeDup. The result is ``OUT/kept.parquet`` (shard, row,
cluster, keep); both executors give the same kept set (tests/curate/test_shards.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from divlab.curate.semantic import embed_texts, semdedup
from divlab.errors import DataError
from divlab.io import write_table
from divlab.optional import require_ray


def _matrix(parts: list[pa.Table], column: str, dtype) -> np.ndarray:
    rows = [
        np.asarray(p.column(column).combine_chunks().flatten()).reshape(p.num_rows, -1)
        for p in parts
    ]
    return np.concatenate(rows).astype(dtype)


def _per_shard(
    shard: Path,
    target: Path,
    compute: Callable[[pa.Table], pa.Table],
    columns: list[str],
    executor: str,
) -> bool:
    """One stage on one shard: ``compute`` over its rows, written to ``target`` (the
    completion marker). False if ``target`` was already there."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    if executor == "ray":
        import ray  # the optional Ray extra, imported only when asked for (checked in _prepare)

        dataset = ray.data.read_parquet(str(shard)).select_columns(columns)
        mapped = dataset.map_batches(compute, batch_format="pyarrow")
        tables = [t for t in ray.get(mapped.to_arrow_refs()) if t.num_rows]
        table = pa.concat_tables(tables) if tables else compute(pq.read_table(shard).slice(0, 0))
    else:
        table = compute(pq.read_table(shard, columns=columns))
    table = table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    write_table(table, target)
    return True


def _prepare(shards, out, executor: str) -> tuple[list[Path], Path]:
    if isinstance(shards, str | Path) and Path(shards).is_dir():
        shards = sorted(Path(shards).glob("*.parquet"))
    shards = [Path(s) for s in shards]
    if not shards:
        raise DataError("no Parquet shards to curate")
    if executor == "ray":
        ray = require_ray()
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
    return shards, Path(out)


def _finish(out: Path, shards: list[Path], parts: list[pa.Table], cluster, keep, done) -> dict:
    shard_of = np.concatenate([np.full(p.num_rows, i) for i, p in enumerate(parts)])
    kept = pa.table(
        {
            "shard": [shards[i].name for i in shard_of],
            "row": np.concatenate([p.column("row").to_numpy() for p in parts]),
            "cluster": np.asarray(cluster, dtype=np.int64),
            "keep": keep,
        }
    )
    write_table(kept, out / "kept.parquet")
    return {
        "shards": len(shards),
        "processed_now": int(sum(done)),
        "documents": len(keep),
        "kept": int(keep.sum()),
        "removed": int((~keep).sum()),
    }


def semdedup_shards(
    shards: str | Path | list,
    out: str | Path,
    embedder: str = "minilm",
    n_clusters: int = 20,
    eps: float | None = None,
    ratio: float | None = None,
    field: str = "text",
    executor: Literal["local", "ray"] = "local",
    seed: int = 0,
) -> dict:
    """SemDeDup across text shards: embeddings per shard in parallel, then spherical
    k-means and SemDeDup on one node (``divlab.curate.semantic``)."""

    shards, out = _prepare(shards, out, executor)

    def embed(table: pa.Table) -> pa.Table:
        texts = table.column(field).to_pylist()
        vectors = embed_texts(texts, embedder) if texts else np.zeros((0, 1), np.float32)
        flat = pa.array(vectors.reshape(-1))
        return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})

    done = [
        _per_shard(s, out / "embeddings" / f"{s.stem}.parquet", embed, [field], executor)
        for s in shards
    ]
    parts = [pq.read_table(out / "embeddings" / f"{s.stem}.parquet") for s in shards]
    result = semdedup(
        _matrix(parts, "embedding", np.float32), n_clusters, eps=eps, ratio=ratio, seed=seed
    )
    return _finish(out, shards, parts, result.cluster, result.keep, done)
