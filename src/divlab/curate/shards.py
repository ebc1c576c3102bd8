"""Near-dedup over a folder of Parquet shards, locally or on Ray Data.

Stage 1 (parallel, per shard): MinHash signatures of every document of the shard, written
to ``OUT/signatures/<shard>.parquet`` through a temporary name and a rename — the file's
presence is the shard's completion marker, so a relaunch skips finished shards and redoes
only a shard that was killed. On Ray, each shard is read and signed by Ray Data
(``read_parquet`` + ``map_batches``). Stage 2 (one node): the LSH edge list and clusters
from the small signature table, and ``OUT/kept.parquet`` (shard, row, cluster, keep).
Both executors give the same kept set (tests/curate/test_shards.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from divlab.curate.minhash import (
    MinHasher,
    MinHashSettings,
    candidate_edges,
    clusters,
    shingle_hashes,
)
from divlab.errors import DataError


def _documents(table: pa.Table, field: str, settings: MinHashSettings) -> list:
    if settings.shingle == "token":
        if "tokens" not in table.column_names:
            raise DataError("token shingles need a 'tokens' column")
        return [np.asarray(t) for t in table.column("tokens").to_pylist()]
    if field not in table.column_names:
        raise DataError(f"the shards have no {field!r} column (columns: {table.column_names})")
    return table.column(field).to_pylist()


def signature_table(table: pa.Table, field: str, settings: MinHashSettings) -> pa.Table:
    """(row, signature) of every document of ``table``; signatures as a fixed-size list."""
    hasher = MinHasher(settings.num_perm, settings.seed)
    documents = _documents(table, field, settings)
    sigs = (
        np.stack([hasher.signature(shingle_hashes(d, settings, distinct=False)) for d in documents])
        if documents
        else np.empty((0, settings.num_perm))
    )
    flat = pa.array(sigs.astype(np.uint32).ravel())
    return pa.table(
        {
            "row": pa.array(np.arange(len(documents), dtype=np.int64)),
            "signature": pa.FixedSizeListArray.from_arrays(flat, settings.num_perm),
        }
    )


def _signature_batch(batch: pa.Table, field: str, settings: MinHashSettings) -> pa.Table:
    out = signature_table(batch, field, settings)
    return out.drop(["row"]).append_column("n", pa.array(np.ones(batch.num_rows, np.int8)))


def _write_atomically(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def sign_shard(
    shard: Path, out: Path, field: str, settings: MinHashSettings, executor: str
) -> bool:
    """Stage 1 for one shard; False if its signatures were already there."""
    target = out / "signatures" / f"{shard.stem}.parquet"
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    if executor == "ray":
        import ray

        columns = ["tokens"] if settings.shingle == "token" else [field]
        dataset = ray.data.read_parquet(str(shard)).select_columns(columns)
        signed = dataset.map_batches(
            _signature_batch,
            batch_format="pyarrow",
            fn_kwargs={"field": field, "settings": settings},
        )
        tables = [t for t in ray.get(signed.to_arrow_refs()) if t.num_rows]
        merged = pa.concat_tables(tables) if tables else None
        n = merged.num_rows if merged is not None else 0
        table = pa.table(
            {
                "row": pa.array(np.arange(n, dtype=np.int64)),
                "signature": merged.column("signature")
                if merged is not None
                else pa.array([], pa.list_(pa.uint32(), settings.num_perm)),
            }
        )
    else:
        table = signature_table(pq.read_table(shard), field, settings)
    _write_atomically(table, target)
    return True


def near_dedup_shards(
    shards: str | Path | list,
    out: str | Path,
    settings: MinHashSettings = MinHashSettings(),
    field: str = "text",
    executor: Literal["local", "ray"] = "local",
) -> dict:
    """Near-dedup across all ``shards`` (a folder of ``*.parquet`` or a list of files)."""
    if isinstance(shards, str | Path) and Path(shards).is_dir():
        shards = sorted(Path(shards).glob("*.parquet"))
    shards = [Path(s) for s in shards]
    if not shards:
        raise DataError("no Parquet shards to deduplicate")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if executor == "ray":
        from divlab.experiments.executors import require_ray

        ray = require_ray()
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
    signed = [sign_shard(s, out, field, settings, executor) for s in shards]
    parts = [pq.read_table(out / "signatures" / f"{s.stem}.parquet") for s in shards]
    sigs = np.concatenate(
        [
            np.asarray(p.column("signature").combine_chunks().flatten()).reshape(
                -1, settings.num_perm
            )
            for p in parts
        ]
    ).astype(np.uint32)
    bands, rows = settings.band_shape()
    cluster = clusters(len(sigs), candidate_edges(sigs, bands, rows))
    keep = np.zeros(len(sigs), dtype=bool)
    _, first = np.unique(cluster, return_index=True)
    keep[first] = True
    shard_of = np.concatenate([np.full(p.num_rows, i) for i, p in enumerate(parts)])
    row = np.concatenate([p.column("row").to_numpy() for p in parts])
    kept = pa.table(
        {
            "shard": [shards[i].name for i in shard_of],
            "row": row,
            "cluster": cluster.astype(np.int64),
            "keep": keep,
        }
    )
    _write_atomically(kept, out / "kept.parquet")
    return {
        "shards": len(shards),
        "signed_now": int(sum(signed)),
        "documents": len(sigs),
        "kept": int(keep.sum()),
        "removed": int((~keep).sum()),
    }
