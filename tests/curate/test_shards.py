"""Near-dedup over Parquet shards: the Ray Data path keeps the same documents as the local
one, and a relaunch after a killed shard redoes only that shard."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from divlab.curate.minhash import MinHashSettings
from divlab.curate.shards import near_dedup_shards

SETTINGS = MinHashSettings("word", 3, 64, 0.7)


@pytest.fixture
def shards(tmp_path):
    """3 shards of 40 documents; 10 documents of shard 0 copied (lightly edited) into
    shards 1 and 2, so duplicates cross shard boundaries."""
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(3000)]
    originals = [" ".join(rng.choice(vocabulary, 60)) for _ in range(110)]
    copies = [text.replace(text.split()[5], "edited", 1) for text in originals[:10]]
    parts = [originals[:40], originals[40:70] + copies, originals[70:110]]
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, texts in enumerate(parts):
        pq.write_table(pa.table({"text": texts}), folder / f"part-{i}.parquet")
    return folder


def test_local_finds_cross_shard_duplicates_and_a_relaunch_skips_finished_shards(shards, tmp_path):
    out = tmp_path / "out"
    report = near_dedup_shards(shards, out, SETTINGS)
    assert report == {"shards": 3, "processed_now": 3, "documents": 120, "kept": 110, "removed": 10}
    kept = pq.read_table(out / "kept.parquet").to_pandas()
    removed = kept[~kept.keep]
    assert set(removed.shard) == {"part-1.parquet"} and set(removed.row) == set(range(30, 40))
    # a shard "killed" before its rename: its signatures are absent; the others are kept
    (out / "signatures" / "part-2.parquet").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "signatures").iterdir()}
    again = near_dedup_shards(shards, out, SETTINGS)
    assert again["processed_now"] == 1 and again["kept"] == 110
    after = {p.name: p.stat().st_mtime_ns for p in (out / "signatures").iterdir()}
    assert all(after[name] == mtime for name, mtime in before.items())


@pytest.mark.slow
def test_ray_data_keeps_the_same_documents_as_local(shards, tmp_path):
    ray = pytest.importorskip("ray")
    near_dedup_shards(shards, tmp_path / "local", SETTINGS)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = near_dedup_shards(shards, tmp_path / "ray", SETTINGS, executor="ray")
    finally:
        ray.shutdown()
    assert report["kept"] == 110
    local = pq.read_table(tmp_path / "local" / "kept.parquet").to_pandas()
    remote = pq.read_table(tmp_path / "ray" / "kept.parquet").to_pandas()
    assert local.equals(remote)


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
