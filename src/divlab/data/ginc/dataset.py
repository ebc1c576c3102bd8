"""GINC data sets on disk: the spec, streaming generation, and loading.

A data set is a folder::

    spec.json           the resolved spec (family, concept ids, splits, seeds)
    <split>.parquet     one row per document: tokens + ground truth (see SCHEMA)
    prompts.parquet     ICL prompt sets (if requested)
    tokenizer/          a PreTrainedTokenizerFast for the vocabulary
    summary.json        counts, oracle loss, ground-truth diversity (written last)

Generation streams chunks of about ``CHUNK_TOKENS`` tokens to Parquet (one row group per
chunk), so memory stays flat as the number of documents grows. The folder is built under
a temporary name and renamed into place at the end: a failed or killed run never leaves a
folder that looks finished.

Randomness: every split has its own stream, derived from ``(seed, split name)``, so train
and eval documents are drawn independently even where they share concepts; within a split,
chunk ``i`` draws from ``(seed, split, i)`` with separate sub-streams for concept
assignment, HMM sampling, noise and duplicates, so switching a knob on does not change the
clean documents.
"""

from __future__ import annotations

import math
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, ValidationError, field_validator, model_validator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import divlab
from divlab import seeds
from divlab.data.ginc.concept_sets import (
    OOD_OFFSET,
    added_concepts,
    eval_concepts,
    nested_concepts,
    ood_concepts,
)
from divlab.data.ginc.family import ConceptFamily, FamilySpec
from divlab.data.ginc.oracle import bayes_mixture_nll, oracle_nll
from divlab.data.ginc.prompts import make_prompts
from divlab.data.ginc.sampler import (
    composed_substitution_rate,
    concept_weights,
    sample_documents,
    substitute,
)
from divlab.data.ginc.tokenizer import save_tokenizer
from divlab.data.ginc.truth import ground_truth_diversity
from divlab.data.store import FORMAT_VERSION, TokenDataset, token_lists, tokenizer_summary
from divlab.errors import ConfigError, DataError, format_validation_error
from divlab.io import atomic_directory, write_json
from divlab.specs import Spec

CHUNK_TOKENS = 1 << 22  # tokens per generation chunk (8 MiB of uint16; memory stays flat)
BAYES_MAX_CONCEPTS = 32  # the Bayes mixture costs one forward pass per concept
BAYES_MAX_TOKENS = 1 << 18  # ... so it is measured on the first ~262k tokens of a split
ROW_GROUP_TOKENS = 1 << 20  # Parquet row groups: bounds the writer's buffers
# zstd: on GINC token columns a third the time of pyarrow's default snappy, and smaller
PARQUET_COMPRESSION = "zstd"

SCHEMA = pa.schema(
    [
        ("doc_id", pa.int64()),
        ("split", pa.string()),
        ("concept", pa.int64()),
        ("tokens", pa.list_(pa.uint16())),
        ("noise", pa.bool_()),  # substitution noise applied (or inherited by a duplicate)
        ("n_noise_tokens", pa.int32()),
        ("duplicate_of", pa.int64()),  # doc_id of the source, -1 for an original
        ("n_duplicate_edits", pa.int32()),  # substitutions made to the copy
        ("substitution_rate", pa.float64()),  # of the channel the tokens went through
        ("oracle_nll", pa.float64()),  # nats/token under the true concept; null if not computed
    ]
)


class NoiseSpec(Spec):
    """A ``fraction`` of the original documents get each token replaced, with probability
    ``rate``, by a random different symbol."""

    fraction: float = Field(0.0, ge=0.0, le=1.0)
    rate: float = Field(0.1, ge=0.0, le=1.0)


class DuplicateSpec(Spec):
    """A ``fraction`` of all documents are copies of an original in the same chunk, each
    token of the copy substituted with probability ``edit_rate`` (0: exact copies)."""

    fraction: float = Field(0.0, ge=0.0, lt=1.0)
    edit_rate: float = Field(0.0, ge=0.0, le=1.0)


class SplitSpec(Spec):
    n_docs: int | None = Field(None, ge=1)
    n_tokens: int | None = Field(None, ge=1, description="alternative to n_docs")
    doc_length: int = Field(1024, ge=2)
    weighting: Literal["uniform", "zipf"] = "uniform"
    zipf_exponent: float = Field(1.0, ge=0.0)
    noise: NoiseSpec = NoiseSpec()
    duplicates: DuplicateSpec = DuplicateSpec()
    oracle: bool = True

    @model_validator(mode="after")
    def _one_size(self) -> SplitSpec:
        if (self.n_docs is None) == (self.n_tokens is None):
            raise ValueError("give exactly one of n_docs and n_tokens")
        return self

    @property
    def docs(self) -> int:
        return (
            self.n_docs if self.n_docs is not None else math.ceil(self.n_tokens / self.doc_length)
        )


class ConceptSetSpec(Spec):
    """Which concepts of the family the data set uses (see ``concept_sets``)."""

    plan: Literal["eval", "nested", "added", "ids"] = "eval"
    n_eval: int = Field(5, ge=1)
    k: int | None = Field(None, ge=0)
    k_added: int = Field(0, ge=0)
    ids: list[int] | None = None
    order_seed: int = Field(0, ge=0)

    @field_validator("ids")
    @classmethod
    def _addressable(cls, v: list[int] | None) -> list[int] | None:
        if v and max(v) >= OOD_OFFSET:
            raise ValueError(
                f"concept ids must be below 2**40 ({OOD_OFFSET}); the ids above are reserved "
                "for out-of-distribution prompt concepts"
            )
        return v

    def resolve(self) -> list[int]:
        if self.plan == "eval":
            return eval_concepts(self.n_eval)
        if self.plan == "nested":
            if self.k is None:
                raise ConfigError("concepts.k is required for plan 'nested'")
            return nested_concepts(self.n_eval, self.k, self.order_seed)
        if self.plan == "added":
            return added_concepts(self.n_eval, self.k or 0, self.k_added, self.order_seed)
        if not self.ids:
            raise ConfigError("concepts.ids must list at least one concept index for plan 'ids'")
        if min(self.ids) < 0 or len(set(self.ids)) != len(self.ids):
            raise ConfigError("concepts.ids must be distinct non-negative integers")
        return list(self.ids)


class PromptSetSpec(Spec):
    n_prompts: int = Field(100, ge=1, description="prompts per (kind, n_examples, length)")
    n_examples: list[int] = Field(default_factory=lambda: [0, 1, 2, 4, 8, 16, 32, 64])
    example_lengths: list[int] = Field(default_factory=lambda: [3, 5, 8, 10])
    n_ood_concepts: int = Field(5, ge=0)
    ood_pattern: Literal["hmm", "random"] = "hmm"
    max_tokens: int = Field(1024, ge=2, description="longest prompt kept")

    @field_validator("n_examples")
    @classmethod
    def _non_negative(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 0:
            raise ValueError("must be a non-empty list of integers >= 0")
        return v

    @field_validator("example_lengths")
    @classmethod
    def _at_least_two(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 2:
            raise ValueError("must be a non-empty list of integers >= 2")
        return v


def _default_splits() -> dict[str, SplitSpec]:
    return {"train": SplitSpec(n_docs=1000), "eval": SplitSpec(n_docs=100)}


class GincSpec(Spec):
    """Everything that defines a GINC data set; same spec, same bytes."""

    family: FamilySpec = FamilySpec()
    concepts: ConceptSetSpec = ConceptSetSpec()
    seed: int = Field(0, ge=0)
    splits: dict[str, SplitSpec] = Field(default_factory=_default_splits)
    prompts: PromptSetSpec | None = PromptSetSpec()

    @field_validator("splits")
    @classmethod
    def _split_names(cls, v: dict[str, SplitSpec]) -> dict[str, SplitSpec]:
        if not v:
            raise ValueError("at least one split is needed")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise ValueError(f"split name {name!r} may use only letters, digits, _ and -")
        return v


def _stream(seed: int, split: str, chunk: int) -> list[np.random.Generator]:
    """Independent generators for (assignment, sampling, noise, duplicates) of a chunk."""
    key = zlib.crc32(split.encode())
    children = seeds.seed_sequence(seed, key, chunk).spawn(4)
    return [np.random.default_rng(child) for child in children]


def _chunk_table(columns: dict[str, np.ndarray], tokens: np.ndarray, split: str) -> pa.Table:
    n_docs = len(tokens)
    arrays = {
        name: values if isinstance(values, pa.Array) else pa.array(values)
        for name, values in columns.items()
    }
    arrays["tokens"] = token_lists(tokens)
    arrays["split"] = pa.array([split] * n_docs, pa.string())
    return pa.table([arrays[f.name].cast(f.type) for f in SCHEMA], schema=SCHEMA)


def _generate_split(
    family: ConceptFamily,
    concept_ids: list[int],
    name: str,
    split: SplitSpec,
    seed: int,
    path: Path,
    progress=None,
) -> dict:
    """Stream one split to ``path``; return its summary."""
    vocab = family.spec.vocab_size
    arrays = family.concepts(concept_ids)
    weights = concept_weights(len(concept_ids), split.weighting, split.zipf_exponent)
    n_docs, length = split.docs, split.doc_length
    per_chunk = max(1, CHUNK_TOKENS // length)
    totals = {"noise_docs": 0, "noise_tokens": 0, "duplicates": 0, "duplicate_edits": 0}
    concept_counts = np.zeros(len(concept_ids), dtype=np.int64)
    oracle_sum, bayes = 0.0, None
    task = progress.add_task(f"{name}", total=n_docs * length) if progress else None
    # Parquet encoding releases the GIL: chunk i is written on a thread while chunk i + 1
    # is sampled. At most one write is pending, so memory stays at about two chunks.
    pending = None
    with (
        pq.ParquetWriter(path, SCHEMA, compression=PARQUET_COMPRESSION) as writer,
        ThreadPoolExecutor(max_workers=1) as write_thread,
    ):
        for chunk, first in enumerate(range(0, n_docs, per_chunk)):
            count = min(per_chunk, n_docs - first)
            assign_rng, sample_rng, noise_rng, duplicate_rng = _stream(seed, name, chunk)
            rows = assign_rng.choice(len(concept_ids), size=count, p=weights)
            tokens = sample_documents(family, arrays, rows, length, sample_rng)

            is_duplicate = duplicate_rng.random(count) < split.duplicates.fraction
            if is_duplicate.all():  # a copy needs an original in its chunk
                is_duplicate[0] = False
            noisy = ~is_duplicate & (noise_rng.random(count) < split.noise.fraction)
            noise_tokens = np.zeros(count, dtype=np.int64)
            if noisy.any():
                block = tokens[noisy]
                noise_tokens[noisy] = substitute(block, split.noise.rate, vocab, noise_rng)
                tokens[noisy] = block
            rate = np.where(noisy, split.noise.rate, 0.0)

            duplicate_of = np.full(count, -1, dtype=np.int64)
            edits = np.zeros(count, dtype=np.int64)
            if is_duplicate.any():
                targets = np.flatnonzero(is_duplicate)
                originals = np.flatnonzero(~is_duplicate)
                sources = originals[duplicate_rng.integers(0, len(originals), len(targets))]
                block = tokens[sources].copy()
                edits[targets] = substitute(block, split.duplicates.edit_rate, vocab, duplicate_rng)
                tokens[targets] = block
                rows[targets] = rows[sources]
                noisy[targets] = noisy[sources]
                noise_tokens[targets] = noise_tokens[sources]
                duplicate_of[targets] = first + sources
                rate[targets] = composed_substitution_rate(
                    rate[sources], split.duplicates.edit_rate, vocab
                )

            nll = oracle_nll(family, arrays, rows, tokens, rate) if split.oracle else None
            if nll is not None:
                oracle_sum += float(nll.sum())
            if nll is not None and chunk == 0 and len(concept_ids) <= BAYES_MAX_CONCEPTS:
                head = slice(0, min(count, max(1, BAYES_MAX_TOKENS // length)))
                mixture = bayes_mixture_nll(family, arrays, weights, tokens[head], rate[head])
                same_docs = oracle_nll(family, arrays, rows[head], tokens[head], rate[head])
                bayes = {
                    "docs": len(mixture),
                    "bayes_mixture_nll": float(mixture.mean()),
                    "oracle_nll": float(same_docs.mean()),
                }

            columns = {
                "doc_id": np.arange(first, first + count, dtype=np.int64),
                "concept": arrays.indices[rows],
                "noise": noisy,
                "n_noise_tokens": noise_tokens.astype(np.int32),
                "duplicate_of": duplicate_of,
                "n_duplicate_edits": edits.astype(np.int32),
                "substitution_rate": rate,
                "oracle_nll": nll if nll is not None else pa.nulls(count, pa.float64()),
            }
            if pending is not None:
                pending.result()
            pending = write_thread.submit(
                writer.write_table,
                _chunk_table(columns, tokens, name),
                row_group_size=max(1, ROW_GROUP_TOKENS // length),
            )
            concept_counts += np.bincount(rows, minlength=len(concept_ids))
            totals["noise_docs"] += int(noisy.sum())
            totals["noise_tokens"] += int(noise_tokens.sum())
            totals["duplicates"] += int(is_duplicate.sum())
            totals["duplicate_edits"] += int(edits.sum())
            if progress:
                progress.update(task, advance=count * length)
        if pending is not None:
            pending.result()

    return {
        "n_docs": n_docs,
        "n_tokens": n_docs * length,
        "doc_length": length,
        "weighting": split.weighting,
        "zipf_exponent": split.zipf_exponent if split.weighting == "zipf" else None,
        "weights": weights.tolist(),
        "concept_counts": concept_counts.tolist(),
        "noise": {
            **split.noise.model_dump(),
            "docs": totals["noise_docs"],
            "tokens": totals["noise_tokens"],
        },
        "duplicates": {
            **split.duplicates.model_dump(),
            "docs": totals["duplicates"],
            "edits": totals["duplicate_edits"],
        },
        "oracle_nll": oracle_sum / n_docs if split.oracle else None,
        "bayes_mixture": bayes,
        "ground_truth_diversity": ground_truth_diversity(family, concept_ids, weights),
    }


def _generate_prompts(
    family: ConceptFamily, concept_ids: list[int], spec: PromptSetSpec, seed: int, path: Path
) -> dict:
    tables, counts = [], {}
    kinds = [("id", concept_ids, "hmm")]
    if spec.n_ood_concepts:
        kinds.append(("ood", ood_concepts(spec.n_ood_concepts), spec.ood_pattern))
    for kind_index, (kind, ids, pattern) in enumerate(kinds):
        for n in spec.n_examples:
            for length in spec.example_lengths:
                if n * (length + 1) + length - 1 > spec.max_tokens:
                    continue
                rng = seeds.rng(seed, 1 << 20, kind_index, n, length)
                cell = make_prompts(family, ids, spec.n_prompts, n, length, rng, pattern)
                tokens = cell.pop("tokens")
                columns = {
                    "kind": pa.array([kind] * len(tokens)),
                    "pattern": pa.array([pattern] * len(tokens)),
                    "n_examples": pa.array(np.full(len(tokens), n, dtype=np.int32)),
                    "example_length": pa.array(np.full(len(tokens), length, dtype=np.int32)),
                    "tokens": token_lists(tokens),
                    **{k: pa.array(v) for k, v in cell.items()},
                }
                tables.append(pa.table(columns))
                counts[kind] = counts.get(kind, 0) + len(tokens)
    if tables:
        pq.write_table(pa.concat_tables(tables), path, compression=PARQUET_COMPRESSION)
    return {"counts": counts, **spec.model_dump()}


def generate(
    spec: GincSpec, out: str | Path, overwrite: bool = False, show_progress: bool = False
) -> Path:
    """Generate the data set described by ``spec`` into folder ``out``."""

    family = ConceptFamily(spec.family)
    concept_ids = spec.concepts.resolve()
    out = Path(out)
    progress = None
    if show_progress:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tokens"),
            TimeRemainingColumn(),
            transient=True,
        )
        progress.start()
    try:
        with atomic_directory(out, overwrite=overwrite) as tmp:
            resolved = {
                "format_version": FORMAT_VERSION,
                "divlab_version": divlab.__version__,
                "concept_ids": concept_ids,
                **spec.model_dump(),
            }
            write_json(tmp / "spec.json", resolved)
            splits = {
                name: _generate_split(
                    family, concept_ids, name, split, spec.seed, tmp / f"{name}.parquet", progress
                )
                for name, split in spec.splits.items()
            }
            prompts = None
            if spec.prompts is not None:
                prompts = _generate_prompts(
                    family, concept_ids, spec.prompts, spec.seed, tmp / "prompts.parquet"
                )
            save_tokenizer(spec.family.vocab_size, tmp / "tokenizer")
            write_json(
                tmp / "summary.json",
                {
                    "format_version": FORMAT_VERSION,
                    "kind": "ginc",
                    "tokenizer": tokenizer_summary(tmp / "tokenizer"),
                    "divlab_version": divlab.__version__,
                    "family": spec.family.model_dump(),
                    "concepts": {"plan": spec.concepts.plan, "ids": concept_ids},
                    "splits": splits,
                    "prompts": prompts,
                },
            )
    finally:
        if progress:
            progress.stop()
    return out


class GincDataset(TokenDataset):
    """A finished GINC data set folder."""

    kind = "ginc"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        if self.summary.get("kind") != "ginc":
            raise DataError(
                f"{self.path} is not a GINC data set (kind {self.summary.get('kind')!r})"
            )

    @property
    def family(self) -> ConceptFamily:
        where = f"{self.path}/summary.json family"
        fields = self.summary.get("family")
        if not isinstance(fields, dict):
            raise DataError(f"{where} is {fields!r}, not a mapping; regenerate the data set")
        try:
            spec = FamilySpec.model_validate(fields)
        except ValidationError as e:
            raise DataError(
                f"{format_validation_error(e, where)}; regenerate the data set"
            ) from None
        return ConceptFamily(spec)

    @property
    def concept_ids(self) -> list[int]:
        concepts = self.summary.get("concepts")
        ids = concepts.get("ids") if isinstance(concepts, dict) else None
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids
        ):
            raise DataError(
                f"{self.path}/summary.json has no list of concept ids (concepts.ids); "
                "regenerate the data set"
            )
        return list(ids)

    def prompts(self) -> pa.Table:
        path = self.path / "prompts.parquet"
        if not path.exists():
            raise DataError(f"{self.path} has no prompt sets (generated with prompts: null)")
        return pq.read_table(path)
