"""Every diversity measure of one data set, side by side (``divlab measure diversity
--metric ...``): Task2Vec and the baselines of ``divlab.measure.baselines``, each with its
CI, its settings and its cost in seconds.

Every baseline sees the same number of documents (``sample``) on every set: Vendi and
Self-BLEU grow with it, distinct-n and the compression ratio fall with it.

Probe-free measures read a divlab data set's token ids (its ``train`` split, else its
first) or a raw corpus's texts (JSONL, Parquet, text files: words are the units); the
embedding measures use the probe's mean-pooled hidden states, or for text a
sentence-transformers ``embedder`` (``minilm``: the offline all-MiniLM-L6-v2).
"""

from __future__ import annotations

import time
from pathlib import Path

from divlab import seeds
from divlab.data.store import open_dataset
from divlab.data.text import read_documents
from divlab.errors import ConfigError, did_you_mean
from divlab.measure import baselines
from divlab.measure.diversity import diversity_coefficient, probe_documents

PROBE_FREE = ("vendi-ngram", "compression", "distinct-n", "self-bleu")
EMBEDDED = ("vendi-embedding", "embedding-dispersion")
METRICS = ("task2vec", *PROBE_FREE, *EMBEDDED)


def parse_metrics(text: str, have_probe: bool, have_embedder: bool) -> list[str]:
    """``a,b,c`` or ``all`` into measure names, checked (one ConfigError naming the
    unknown ones and what a measure needs)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        names = list(PROBE_FREE)
        if have_probe:
            names = ["task2vec", *names]
        if have_probe or have_embedder:
            names += list(EMBEDDED)
        return names
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        hints = "".join(did_you_mean(n, METRICS) for n in unknown[:1])
        raise ConfigError(
            f"unknown measure(s) {unknown}; choose from {', '.join(METRICS)} or all{hints}"
        )
    if "task2vec" in names and not have_probe:
        raise ConfigError("task2vec needs --probe (a checkpoint, .gguf, smollm2 or random:PRESET)")
    if any(n in EMBEDDED for n in names) and not (have_probe or have_embedder):
        raise ConfigError(f"{', '.join(EMBEDDED)} need --probe or --embedder")
    return names


def documents_of(
    data: str | Path, field: str = "text", split: str | None = None
) -> tuple[list, int | None, str]:
    """(documents, vocabulary size or None, where they came from): token ids of a divlab
    data set's ``split`` (``TokenDataset.data_split``), or the texts of a corpus."""
    path = Path(data)
    if (path / "summary.json").exists():
        dataset = open_dataset(path)
        split = dataset.data_split(split)
        return dataset.documents(split), dataset.vocab_size, f"{path}:{split}"
    return list(read_documents(path, field=field)), None, str(path)


def measure_suite(
    data,
    metrics: list[str],
    probe=None,
    settings=None,
    *,
    sample: int | None = None,
    rounds: int = 50,
    seed: int = 0,
    embedder: str | None = None,
    field: str = "text",
    split: str | None = None,
    progress: bool = False,
) -> dict:
    """Each measure in ``metrics`` of ``data``: ``{"data", "measures": {name: result}}``,
    every result with ``value``, ``ci``, ``settings`` and ``seconds``. ``sample``: the
    Vendi / Self-BLEU sample (default min(256, half the documents)); compare sets only
    at the same sample."""
    documents, vocab, source = documents_of(data, field, split)
    if len(documents) < 4:
        raise ConfigError(f"{source} has {len(documents)} documents; the measures need >= 4")
    if sample is None:
        sample = max(2, min(baselines.DEFAULT_SAMPLE, len(documents) // 2))
    if sample < 2:
        raise ConfigError(f"--sample must be at least 2 documents, not {sample}")
    out: dict = {}
    for name in metrics:
        started = time.perf_counter()
        if name == "task2vec":
            prepared = probe_documents(data, probe, field=field, split=split)
            result = diversity_coefficient(prepared, probe, settings, progress=progress)
            result = {k: v for k, v in result.items() if k != "distance_matrix"}
            result["value"], result["ci"] = result["diversity"], result["ci95"]
        elif name in EMBEDDED:
            if "_embeddings" not in out:  # once, its cost counted in the first such measure
                units = documents
                if probe is not None and embedder is None:  # the probe's own tokens
                    units = probe_documents(data, probe, field=field, split=split).documents
                out["_embeddings"] = sample_embeddings(units, probe, sample, seed, embedder)
            embeddings = out["_embeddings"]  # fmt: skip
            function = baselines.EMBEDDING_MEASURES[name]
            kwargs = {"sample": sample} if name == "vendi-embedding" else {}
            result = function(embeddings, seed=seed, rounds=rounds, **kwargs)
        else:
            function = baselines.MEASURES[name]
            kwargs = {"sample": sample} if name in ("vendi-ngram", "self-bleu") else {}
            if name == "compression":
                kwargs["vocab_size"] = vocab
            # distinct-n and compression fall as a set grows: one sample size for all sets
            units = documents if kwargs.get("sample") else fixed_sample(documents, sample, seed)
            result = function(units, seed=seed, rounds=rounds, **kwargs)
        result["seconds"] = time.perf_counter() - started
        out[name] = result
    out.pop("_embeddings", None)
    return {"data": source, "documents": len(documents), "sample": sample, "measures": out}


def overlap_of(
    data_a, data_b, seed: int = 0, rounds: int = 50, field: str = "text", split: str | None = None
) -> dict:
    """``baselines.eval_overlap`` of two data sets or corpora (token ids of divlab data
    sets, texts of corpora; the two must be of one kind)."""
    first, _, _ = documents_of(data_a, field, split)
    second, _, _ = documents_of(data_b, field, split)
    return baselines.eval_overlap(first, second, seed=seed, rounds=rounds)


def fixed_sample(documents: list, sample: int, seed: int) -> list:
    """``sample`` documents drawn by seed (in their order), or all of a smaller set: one
    number of documents for every set compared."""
    if len(documents) <= sample:
        return list(documents)
    chosen = sorted(seeds.rng(seed, "fixed sample").choice(len(documents), sample, replace=False))
    return [documents[i] for i in chosen]


def sample_embeddings(
    documents, probe, sample: int, seed: int, embedder: str | None = None, seq_len: int = 128
):
    """Embeddings of at most ``2 x sample`` documents drawn by seed (enough for the Vendi
    CI's independent samples): a sentence-transformers ``embedder``'s of texts, else the
    probe's mean-pooled hidden states over each document's first ``seq_len`` tokens."""
    chosen = sorted(seeds.rng(seed, "embedding sample").permutation(len(documents))[: 2 * sample])
    picked = [documents[i] for i in chosen]
    if embedder is not None:
        if not all(isinstance(d, str) for d in picked):
            raise ConfigError("--embedder embeds texts: give a corpus file, not token ids")
        return baselines.sentence_embeddings(picked, model=embedder)
    return baselines.mean_pooled_embeddings(probe, picked, seq_len=seq_len)
