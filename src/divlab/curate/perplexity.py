"""Perplexity filtering: score every document with a causal LM and keep a band.

The data-engine step "train a small model -> score -> filter -> retrain": any divlab
checkpoint or HF causal-LM folder with the data's vocabulary scores each document's
perplexity (exp of its mean token NLL, ``divlab.evaluate.loss.token_nll``); the filter
keeps the documents whose perplexity lies in a quantile band (``keep_low``..``keep_high``
of the distribution, e.g. 0.0..0.9 drops the 10 % least likely: noise) or an absolute
range. ``curation/removed.parquet`` lists every dropped document with its perplexity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from divlab.curate.corpus import filter_corpus
from divlab.curate.dedup import open_for_curation, write_curated
from divlab.data.text import load_tokenizer
from divlab.devices import resolve_device
from divlab.errors import ConfigError, DataError
from divlab.evaluate.checkpoint import check_vocabulary
from divlab.evaluate.loss import token_nll
from divlab.evaluate.model import checkpoint_path, load_model


def document_perplexities(
    model,
    documents: list[np.ndarray],
    prefix_id: int,
    context: int,
    batch_size: int = 16,
    progress: bool = False,
) -> np.ndarray:

    nll = token_nll(model, documents, prefix_id, context, batch_size, progress)
    return np.array([np.exp(n.mean()) if len(n) else np.nan for n in nll])


def _check_band(keep_low: float, keep_high: float, absolute: bool) -> None:
    if keep_low >= keep_high or (not absolute and not 0.0 <= keep_low < keep_high <= 1.0):
        raise ConfigError(
            f"keep band [{keep_low}, {keep_high}] must be increasing (and within [0, 1] for "
            "quantiles)"
        )


def band(scores: np.ndarray, keep_low: float, keep_high: float, absolute: bool):
    """(kept mask, why each is dropped, the report's settings and quantiles) of a
    perplexity band: quantiles of ``scores`` or (``absolute``) perplexities."""
    if np.isnan(scores).all():
        raise DataError("no document has a token to score (all texts empty?)")
    band = [keep_low, keep_high]
    low, high = band if absolute else np.nanquantile(scores, band)
    kept = (scores >= low) & (scores <= high)  # a NaN (no tokens) is never kept
    reason = np.select([np.isnan(scores), scores < low], ["no tokens", "below band"], "above band")
    fields = {
        "settings": {
            "keep_low": keep_low,
            "keep_high": keep_high,
            "absolute": absolute,
            "band": [float(low), float(high)],
        },
        "perplexity_quantiles": {
            str(q): float(v)
            for q, v in zip((0.1, 0.5, 0.9), np.nanquantile(scores, [0.1, 0.5, 0.9]), strict=True)
        },
    }
    return kept, reason, fields


def perplexity_filter(
    data: str | Path,
    out: str | Path,
    model: str | Path,
    keep_low: float = 0.0,
    keep_high: float = 0.9,
    absolute: bool = False,
    split: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Keep the documents of ``split`` whose perplexity under ``model`` is in the band:
    quantiles ``[keep_low, keep_high]`` of the scores, or (``absolute``) that range of
    perplexities. Writes a new data set folder ``out``; returns the report."""

    _check_band(keep_low, keep_high, absolute)
    dataset, split, table = open_for_curation(data, out, split)
    check_vocabulary(checkpoint_path(model), dataset)
    lm = load_model(model, str(resolve_device(device)))
    documents = dataset.documents(split)
    context = int(getattr(lm.config, "max_position_embeddings", 1024))
    scores = document_perplexities(lm, documents, dataset.eos_token_id, context, progress=progress)
    kept, reason, fields = band(scores, keep_low, keep_high, absolute)
    doc_ids = table.column("doc_id").to_numpy()
    removed = pa.table(
        {"doc_id": doc_ids[~kept], "perplexity": scores[~kept], "reason": reason[~kept].tolist()}
    )
    fields["settings"]["model"] = str(model)
    report = {
        "method": "perplexity",
        "split": split,
        "source": str(dataset.path),
        **fields,
        "documents_in": len(documents),
        "kept": int(kept.sum()),
        "removed": int((~kept).sum()),
    }
    write_curated(dataset, split, table, kept, removed, report, out, overwrite)
    return report


def perplexity_corpus(
    inputs,
    out: str | Path,
    model: str | Path,
    keep_low: float = 0.0,
    keep_high: float = 0.9,
    absolute: bool = False,
    text_field: str = "text",
    device: str = "auto",
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """The perplexity band on a raw corpus (:mod:`divlab.curate.corpus`), each text
    tokenized by the scoring model's own tokenizer (the files in its folder)."""
    _check_band(keep_low, keep_high, absolute)
    tokenizer = load_tokenizer(checkpoint_path(model))
    lm = load_model(model, str(resolve_device(device)))
    context = int(getattr(lm.config, "max_position_embeddings", 1024))
    prefix = tokenizer.eos_token_id  # as divlab trains: documents joined by eos

    def select(texts: list[str]):
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        documents = [np.asarray(i) for i in ids]
        scores = document_perplexities(lm, documents, prefix, context, progress=progress)
        kept, reason, fields = band(scores, keep_low, keep_high, absolute)
        fields["settings"]["model"] = str(model)
        return kept, {"perplexity": scores, "reason": reason}, fields

    return filter_corpus(inputs, out, select, "perplexity", text_field, skip_bad, overwrite)
