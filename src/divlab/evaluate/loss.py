"""Loss, perplexity and the gap to the oracle on an eval split.

Each document is scored token by token: the model predicts ``doc[t]`` from
``[<eos>] + doc[:t]`` (``<eos>`` is what precedes a document in packed training data),
in consecutive windows of the model's context length when a document is longer (the
context restarts at each window). On GINC data the same positions are scored under the
document's true concept with full history (``oracle.forward(per_token=True)``), so
``gap = loss - oracle_loss`` compares like with like.
"""

from __future__ import annotations

import numpy as np
import torch

from divlab.data.ginc.oracle import forward
from divlab.data.store import TokenDataset
from divlab.devices import autocast
from divlab.errors import DataError
from divlab.progress import bar


def token_nll(
    model,
    documents: list[np.ndarray],
    prefix_id: int,
    context: int,
    batch_size: int = 16,
    progress: bool = False,
) -> list[np.ndarray]:
    """Per-token negative log-likelihood (nats) of every token of every document
    (``progress``: a bar over the batches, on stderr)."""

    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        firsts = range(0, len(documents), batch_size)
        for first in bar(firsts, "scoring documents" if progress else None):
            batch = documents[first : first + batch_size]
            lengths = np.array([len(d) for d in batch])
            width = int(lengths.max()) + 1
            inputs = np.full((len(batch), width), prefix_id, dtype=np.int64)
            for i, doc in enumerate(batch):
                inputs[i, 1 : len(doc) + 1] = doc
            inputs_t = torch.from_numpy(inputs).to(device)
            nll = np.zeros((len(batch), width - 1))
            for start in range(0, width - 1, context):
                window = inputs_t[:, start : start + context]
                targets = inputs_t[:, start + 1 : start + context + 1]
                with autocast(device):
                    logits = model(input_ids=window[:, : targets.shape[1]]).logits
                log_probs = torch.log_softmax(logits.float(), dim=-1)
                picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                nll[:, start : start + targets.shape[1]] = -picked.cpu().numpy()
            out.extend(nll[i, :n] for i, n in enumerate(lengths))
    model.train(was_training)
    return out


class EvalSet:
    """The documents of an eval split, with what is needed to score a model on them:
    concept ids and the oracle's per-token NLL where the data is GINC."""

    def __init__(self, dataset: TokenDataset, split: str = "eval", max_docs: int | None = 64):
        if split not in dataset.splits:
            raise DataError(
                f"{dataset.path} has no split {split!r} to evaluate on; it has "
                f"{', '.join(dataset.splits)}"
            )
        self.dataset, self.split = dataset, split
        docs = dataset.documents(split)
        self.documents = docs[:max_docs] if max_docs else docs
        self.prefix_id = dataset.eos_token_id
        columns = dataset.table(split).column_names
        self.concepts = None
        self.oracle = None
        if "concept" in columns:
            table = dataset.table(split, ["concept", "substitution_rate"])
            self.concepts = table.column("concept").to_numpy()[: len(self.documents)]
            self.oracle = self._oracle(table.column("substitution_rate").to_numpy())

    def _oracle(self, rates: np.ndarray) -> list[np.ndarray] | None:

        family = self.dataset.family
        concept_ids = sorted(set(self.concepts.tolist()))
        arrays = family.concepts(concept_ids)
        rows = np.searchsorted(arrays.indices, self.concepts)
        result: list[np.ndarray] = [None] * len(self.documents)  # type: ignore[list-item]
        lengths = np.array([len(d) for d in self.documents])
        for length in np.unique(lengths):  # forward runs on equal-length batches
            index = np.flatnonzero(lengths == length)
            tokens = np.stack([self.documents[i] for i in index])
            steps, _ = forward(family, arrays, rows[index], tokens, rates[index], per_token=True)
            for j, i in enumerate(index):
                result[i] = -steps[j]
        return result

    @property
    def n_tokens(self) -> int:
        return int(sum(len(d) for d in self.documents))

    def evaluate(self, model, context: int, batch_size: int = 16, progress: bool = False) -> dict:
        """Loss (nats/token), perplexity, per-concept loss, and on GINC the oracle loss and
        the gap, all token-weighted over the eval documents."""
        nll = token_nll(model, self.documents, self.prefix_id, context, batch_size, progress)
        total = np.concatenate(nll)
        result = {"loss": float(total.mean()), "perplexity": float(np.exp(total.mean()))}
        result["n_docs"], result["n_tokens"] = len(nll), int(total.size)
        if self.concepts is not None:
            per_concept = {}
            for concept in np.unique(self.concepts):
                chosen = np.concatenate([nll[i] for i in np.flatnonzero(self.concepts == concept)])
                per_concept[str(int(concept))] = float(chosen.mean())
            result["per_concept"] = per_concept
        if self.oracle is not None:
            oracle = float(np.concatenate(self.oracle).mean())
            result["oracle_loss"] = oracle
            result["gap"] = result["loss"] - oracle
            result["per_concept_oracle"] = {
                str(int(c)): float(
                    np.concatenate(
                        [self.oracle[i] for i in np.flatnonzero(self.concepts == c)]
                    ).mean()
                )
                for c in np.unique(self.concepts)
            }
        return result


def unigram_loss(documents: list[np.ndarray], reference: list[np.ndarray] | None = None) -> float:
    """Cross-entropy (nats/token) of ``documents`` under the unigram distribution of
    ``reference`` (default: their own): the loss of a model that ignores context."""
    reference = documents if reference is None else reference
    counts = np.bincount(np.concatenate(reference))
    tokens = np.concatenate(documents)
    counts = np.pad(counts, (0, max(0, int(tokens.max()) + 1 - len(counts))))
    probabilities = counts / counts.sum()
    with np.errstate(divide="ignore"):
        return float(-np.log(probabilities[tokens]).mean())
