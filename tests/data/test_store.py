"""Token data sets on disk: writing a new data set from tables of another."""

import pytest


def test_write_dataset_round_trips_documents_and_extra_columns(one_concept, tmp_path):
    import pyarrow as pa

    from divlab.data.store import open_dataset, write_dataset
    from divlab.errors import DataError

    source = open_dataset(one_concept)
    table = source.table("train").slice(0, 5).select(["tokens", "concept"])
    made = write_dataset(tmp_path / "new", source, {"train": table}, provenance={"from": "test"})
    assert made.summary["splits"]["train"]["n_docs"] == 5
    assert made.summary["provenance"] == {"from": "test"}
    assert made.vocab_size == source.vocab_size
    for a, b in zip(made.documents("train"), source.documents("train")[:5], strict=True):
        assert (a == b).all()
    assert made.table("train").column("concept").to_pylist() == table.column("concept").to_pylist()
    with pytest.raises(DataError, match="no documents"):
        write_dataset(tmp_path / "empty", source, {"train": table.slice(0, 0)})
    with pytest.raises(DataError, match="'tokens' column"):
        write_dataset(tmp_path / "bad", source, {"train": pa.table({"x": [1]})})
