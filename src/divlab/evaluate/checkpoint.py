"""Every metric of the plan on one checkpoint and one data set (``divlab evaluate``)."""

from __future__ import annotations

import json
from pathlib import Path

from divlab.data.store import open_dataset
from divlab.devices import resolve_device
from divlab.errors import DataError
from divlab.evaluate.continuation import continuation_metrics
from divlab.evaluate.icl import icl_accuracy, predict_icl
from divlab.evaluate.loss import EvalSet
from divlab.evaluate.model import HFLanguageModel, load_model


def check_vocabulary(model_dir: Path, dataset) -> None:
    """Refuse to score a model on data tokenized with a different vocabulary."""
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("vocab_size") != dataset.vocab_size:
        raise DataError(
            f"the eval data's vocabulary ({dataset.vocab_size} tokens) differs from the model's "
            f"({config.get('vocab_size')}); evaluate on data made with the model's tokenizer"
        )
    model_vocab, data_vocab = (
        model_dir / "tokenizer.json",
        dataset.path / "tokenizer" / "tokenizer.json",
    )
    if model_vocab.exists() and data_vocab.exists():
        ours = json.loads(model_vocab.read_text())["model"].get("vocab")
        theirs = json.loads(data_vocab.read_text())["model"].get("vocab")
        if ours != theirs:
            raise DataError(
                f"the tokenizer of {model_dir} maps tokens to ids differently from the eval "
                f"data's ({dataset.path}); evaluate on data made with the model's tokenizer"
            )


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "eval",
    limit: int | None = 64,
    prefix: int = 32,
    length: int = 16,
    icl: bool = True,
    device: str = "auto",
    progress: bool = False,
) -> dict:
    """Loss / perplexity / oracle gap, continuation metrics and (GINC) ICL accuracy
    (``progress``: a bar over the scored batches, on stderr)."""

    checkpoint, dataset = Path(checkpoint), open_dataset(data)
    if not (checkpoint / "config.json").exists():
        raise DataError(f"{checkpoint} is not a model checkpoint (no config.json)")
    check_vocabulary(checkpoint, dataset)
    model = load_model(checkpoint, str(resolve_device(device)))
    wrapped = HFLanguageModel(model)
    eval_set = EvalSet(dataset, split, limit)
    result = {
        "checkpoint": str(checkpoint),
        "data": str(dataset.path),
        "split": split,
        "split_docs": dataset.summary["splits"][split]["n_docs"],
    }
    result["loss"] = eval_set.evaluate(model, wrapped.context, progress=progress)
    if any(len(d) >= prefix + length for d in eval_set.documents[: limit or 64]):
        continuation = continuation_metrics(wrapped, eval_set, prefix, length, limit or 64)
    else:  # short documents (held-out sentences): their loss is still the answer
        continuation = {
            "prefix": prefix,
            "length": length,
            "docs": 0,
            "skipped": f"no document has prefix + length = {prefix + length} tokens "
            "(lower --prefix / --length for continuations)",
        }
    result["continuation"] = continuation
    if icl and (dataset.path / "prompts.parquet").exists():
        prompts = dataset.prompts().to_pandas()
        predictions = predict_icl(
            wrapped, prompts, dataset.eos_token_id, dataset.family.spec.vocab_size
        )
        result["icl"] = icl_accuracy(prompts, predictions).to_dict(orient="records")
    return result
