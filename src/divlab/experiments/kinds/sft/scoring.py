"""A causal LM on instruction examples, in one forward pass per batch of equal length:
its greedy first response token after ``<eos> + prompt`` (over the GINC symbols only), the
mean NLL of the Bayes response given the prompt (teacher forcing), and the mean-pooled last
hidden state of ``<eos> + prompt + response`` (the embedding of the selectors).
"""

from __future__ import annotations

import numpy as np
import torch

from divlab.devices import autocast

BATCH = 64


def score_examples(
    model, prompts: list, responses: list, eos: int, symbols: int, embed: bool = False
) -> dict[str, np.ndarray]:
    """``predicted`` (N,) first response token, ``response_nll`` (N,) nats per response
    token, and with ``embed`` ``embeddings`` (N, hidden)."""
    sequences = [
        np.concatenate([[eos], np.asarray(p, np.int64), np.asarray(r, np.int64)])
        for p, r in zip(prompts, responses, strict=True)
    ]
    n = len(sequences)
    predicted = np.empty(n, np.int64)
    nll = np.empty(n)
    embeddings = None
    device = next(model.parameters()).device
    lengths = np.array([len(s) for s in sequences])
    prompt_lengths = np.array([len(p) for p in prompts])
    with torch.no_grad():
        for length in np.unique(lengths):
            index = np.flatnonzero(lengths == length)
            for first in range(0, len(index), BATCH):
                rows = index[first : first + BATCH]
                ids = torch.from_numpy(np.stack([sequences[i] for i in rows])).to(device)
                with autocast(device):
                    out = model(input_ids=ids, output_hidden_states=embed)
                logprobs = torch.log_softmax(out.logits.float(), dim=-1).cpu().numpy()
                for j, i in enumerate(rows):
                    p = prompt_lengths[i]  # logits[p] predicts the first response token
                    predicted[i] = logprobs[j, p, :symbols].argmax()
                    targets = sequences[i][p + 1 :]
                    positions = np.arange(p, p + len(targets))
                    nll[i] = -logprobs[j, positions, targets].mean()
                if embed:
                    hidden = out.hidden_states[-1].float().mean(dim=1).cpu().numpy()
                    if embeddings is None:
                        embeddings = np.empty((n, hidden.shape[1]), np.float32)
                    embeddings[rows] = hidden
    result = {"predicted": predicted, "response_nll": nll}
    if embed:
        result["embeddings"] = embeddings
    return result
