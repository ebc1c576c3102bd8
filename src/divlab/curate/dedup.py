"""Exact and near-duplicate removal on a divlab data set (GINC tokens or prepared text).

``dedup_dataset(data, out, ...)`` writes a NEW data set folder (the input is never
modified): the chosen split keeps one document per duplicate cluster, the other splits,
the tokenizer and the prompts are copied unchanged, ``summary.json`` records the new
counts and the curation, and ``curation/`` says what was removed and why:

    curation/removed.parquet   doc_id, cluster, kept_doc_id (the document it duplicates)
    curation/report.json       method, settings, documents in / kept / removed, clusters

* ``exact``: documents whose normalised text (or token ids) hash alike (xxhash 128-bit).
* ``near``: MinHash-LSH clusters (``divlab.curate.minhash``), optionally checked by exact
  Jaccard. Text data use character or word shingles of the ``text`` column; token data
  (GINC) use token n-grams.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from divlab.curate.minhash import (
    MinHashSettings,
    keep_per_cluster,
    near_duplicates,
    normalise,
    settings_for,
)
from divlab.data.ginc.truth import ground_truth_diversity
from divlab.data.store import open_dataset
from divlab.errors import ConfigError, DataError
from divlab.io import atomic_directory, write_json


def exact_clusters(documents, normalise_text: bool = True) -> np.ndarray:
    """A cluster id per document: equal ids for equal (normalised) content."""

    keys = []
    for document in documents:
        if isinstance(document, str):
            text = normalise(document) if normalise_text else document
            keys.append(xxhash.xxh3_128_intdigest(text.encode("utf-8")))
        else:
            keys.append(xxhash.xxh3_128_intdigest(np.ascontiguousarray(document).tobytes()))
    _, cluster = np.unique(np.array(keys, dtype=object), return_inverse=True)
    return cluster


def write_curated(
    dataset,
    split: str,
    table: pa.Table,
    kept: np.ndarray,
    removed: pa.Table,
    report: dict,
    out: str | Path,
    overwrite: bool,
) -> None:
    """A new data set folder: ``split`` filtered to ``kept``, everything else copied, the
    curation recorded in ``summary.json`` and ``curation/`` (shared by every method)."""
    summary = dict(dataset.summary)
    summary["splits"] = dict(summary["splits"])
    curated = table.filter(pa.array(kept))
    before = summary["splits"][split]
    after = {**before, **split_facts(dataset, curated, before)}
    if "bayes_mixture" in after:  # taken on the generated documents, not these
        after["bayes_mixture"] = None
    summary["splits"][split] = after
    report = {
        **report,
        "split": split,
        "before": {k: before.get(k) for k in FACTS},
        "after": {k: after.get(k) for k in FACTS},
    }
    summary["curation"] = [*summary.get("curation", []), report]
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for item in dataset.path.iterdir():
            if item.name in ("summary.json", f"{split}.parquet", "curation"):
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
        pq.write_table(curated, tmp / f"{split}.parquet", compression="zstd")
        (tmp / "curation").mkdir()
        pq.write_table(removed, tmp / "curation" / "removed.parquet")
        write_json(tmp / "curation" / "report.json", report)
        write_json(tmp / "summary.json", summary)  # last: the folder is complete


# what a curation step's before/after records (the counts ginc info / data info print)
FACTS = ("n_docs", "n_tokens", "noise", "duplicates", "oracle_nll", "concept_counts")


def split_facts(dataset, table: pa.Table, template: dict) -> dict:
    """A split's summary recomputed from the documents it holds: counts, and on GINC the
    noisy documents and tokens, duplicates, mean oracle NLL, documents per concept and the
    ground-truth diversity of those concept shares (``template``: the split's summary as
    generated, whose knob settings are kept)."""
    lengths = pc.list_value_length(table.column("tokens"))
    facts = {"n_docs": table.num_rows, "n_tokens": int(pc.sum(lengths).as_py() or 0)}
    if "mean_doc_tokens" in template:  # prepared text
        facts["mean_doc_tokens"] = facts["n_tokens"] / max(facts["n_docs"], 1)
    names = set(table.column_names)
    if getattr(dataset, "kind", None) != "ginc" or not {"concept", "noise"} <= names:
        return facts
    noise = table.column("noise").to_numpy(zero_copy_only=False)
    duplicate_of = table.column("duplicate_of").to_numpy()
    facts["noise"] = {
        **template.get("noise", {}),
        "docs": int(noise.sum()),
        "tokens": int(pc.sum(table.column("n_noise_tokens")).as_py() or 0),
    }
    present = np.isin(duplicate_of, table.column("doc_id").to_numpy())
    facts["duplicates"] = {
        **template.get("duplicates", {}),
        "docs": int((duplicate_of >= 0).sum()),
        "with_source": int(present.sum()),  # copies whose source is still in the set
        "edits": int(pc.sum(table.column("n_duplicate_edits")).as_py() or 0),
    }
    oracle = table.column("oracle_nll")
    facts["oracle_nll"] = (
        float(pc.mean(oracle).as_py()) if oracle.null_count < len(oracle) and len(table) else None
    )
    ids = dataset.concept_ids
    concepts = table.column("concept").to_numpy()
    counts = np.array([(concepts == c).sum() for c in ids], dtype=np.int64)
    facts["concept_counts"] = counts.tolist()
    if counts.sum():
        facts["ground_truth_diversity"] = ground_truth_diversity(
            dataset.family, ids, counts / counts.sum()
        )
    return facts


def open_for_curation(data, out, split: str | None):
    """(data set, split, its table): ``split`` by ``TokenDataset.data_split`` (None: train,
    else the set's only split); an output that is or holds the input is refused."""

    dataset = open_dataset(data)
    target, source = Path(out).resolve(), dataset.path.resolve()
    if target == source or target in source.parents:
        raise ConfigError(
            "the output folder must differ from the input and not hold it (never curate in "
            "place: --overwrite would replace the input)"
        )
    split = dataset.data_split(split)
    return dataset, split, dataset.table(split)


def dedup_dataset(
    data: str | Path,
    out: str | Path,
    method: Literal["exact", "near"] = "near",
    settings: MinHashSettings | None = None,
    split: str | None = None,
    verify: bool = False,
    keep: Literal["first", "longest"] = "first",
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Deduplicate ``split`` of the data set ``data`` into a new folder ``out``."""
    dataset, split, table = open_for_curation(data, out, split)
    is_text = "text" in table.column_names
    documents = table.column("text").to_pylist() if is_text else dataset.documents(split)
    if not documents:
        raise DataError(f"{dataset.path}:{split} has no documents to deduplicate")
    if method == "exact":
        cluster = exact_clusters(documents)
        kept = keep_per_cluster(cluster)
        used = {"normalised": True}
    elif method == "near":
        settings = settings or settings_for(is_text)
        if not is_text and settings.shingle != "token":
            raise ConfigError("token data (GINC) need token shingles: use shingle 'token'")
        if is_text and settings.shingle == "token":
            raise ConfigError("text data need char or word shingles, not token shingles")
        result = near_duplicates(documents, settings, verify, keep, progress)
        cluster, kept = result.cluster, result.keep
        bands, rows = settings.band_shape()
        used = {
            **asdict(settings),
            "bands": bands,
            "rows": rows,
            "verify": verify,
            "keep": keep,
            "candidate_pairs": result.candidates,
        }
    else:
        raise ConfigError(f"unknown dedup method {method!r}; use exact or near")

    doc_ids = table.column("doc_id").to_numpy()
    kept_of_cluster = {c: doc_ids[i] for i, c in enumerate(cluster) if kept[i]}
    removed = pa.table(
        {
            "doc_id": doc_ids[~kept],
            "cluster": cluster[~kept].astype(np.int64),
            "kept_doc_id": np.array([kept_of_cluster[c] for c in cluster[~kept]], dtype=np.int64),
        }
    )
    sizes = np.bincount(cluster)
    report = {
        "method": method,
        "split": split,
        "source": str(dataset.path),
        "settings": used,
        "documents_in": len(documents),
        "kept": int(kept.sum()),
        "removed": int((~kept).sum()),
        "duplicate_clusters": int((sizes > 1).sum()),
        "largest_cluster": int(sizes.max()),
    }
    write_curated(dataset, split, table, kept, removed, report, out, overwrite)
    return report
