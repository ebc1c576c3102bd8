"""SemDeDup over Parquet shards: the Ray Data path keeps the same documents as the local
one. (Near dedup over shards: tests/curate/test_corpus.py.)"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@pytest.mark.slow
def test_semdedup_over_shards_local_and_ray_agree(tmp_path):
    pytest.importorskip("faiss")
    pytest.importorskip("sentence_transformers")
    ray = pytest.importorskip("ray")
    from divlab.curate.shards import semdedup_shards

    texts = [
        f"The {animal} sat by the {place} at {time}."
        for animal in ("cat", "dog", "horse", "bird")
        for place in ("river", "gate", "hill")
        for time in ("dawn", "noon", "dusk")
    ]
    copies = [t.upper() for t in texts[:6]]
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.table({"text": texts[:20]}), folder / "a.parquet")
    pq.write_table(pa.table({"text": texts[20:] + copies}), folder / "b.parquet")
    local = semdedup_shards(folder, tmp_path / "local", n_clusters=4, ratio=36 / 42)
    assert local["removed"] == 6 and local["processed_now"] == 2
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        semdedup_shards(folder, tmp_path / "ray", n_clusters=4, ratio=36 / 42, executor="ray")
    finally:
        ray.shutdown()
    a = pq.read_table(tmp_path / "local" / "kept.parquet").to_pandas()
    b = pq.read_table(tmp_path / "ray" / "kept.parquet").to_pandas()
    assert a.keep.tolist() == b.keep.tolist()
