"""Task2Vec embeddings of batches of sequences (Achille et al. 2019; Miranda, Lee et al.
2023, "Beyond Scale"), with two estimators of the Fisher information diagonal.

``montecarlo`` (faithful to Beyond Scale): fine-tune the LM head on the batch, sample each
position's target from the model's own predictive distribution, back-propagate the summed
NLL over minibatches and accumulate squared gradients of ALL weight matrices; the
embedding keeps, per weight matrix, the mean of the FIM diagonal over each row. The
reference implementation's bugs are fixed here: targets are sampled for the position whose
logits they are scored with (the reference paired logits at t with a sample from t + 1);
padding is masked; the probe is in eval mode (no dropout); and the head fine-tune works
on an untied copy of the head, so a tied input embedding is never changed.

``closed-form`` (divlab's fast path, hand-written because it is the product): for the LM
head ``W`` (V x d) with features ``h_t`` and ``p_t = softmax(W h_t)``, the EXPECTED squared
gradient of a sampled label's log-likelihood is ``p_t[v] (1 - p_t[v]) h_t[j]^2`` (the
cross-token terms vanish in expectation), so the head FIM is one pass over the batch:
features from the frozen body, an optional head fine-tune on the cached features, then
``F = (P * (1 - P))^T (H * H)`` in row chunks, so a 50k vocabulary needs no V x N matrix at
once. Both estimators estimate the per-token average FIM, so their head parts agree in
expectation (tests/measure/test_task2vec.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from divlab.devices import as_float32
from divlab.errors import ConfigError

CHUNK_ELEMENTS = 1 << 24  # rows of P computed at once: rows * V <= this (64 MiB of float32)


@dataclass(frozen=True)
class HeadFineTune:
    """Fine-tune the LM head on the batch's own next tokens before measuring (the
    reference: AdamW, lr 5e-5, 10 epochs in the code, 5 in the paper). 0 epochs: no
    fine-tune."""

    epochs: int = 0
    lr: float = 5e-5
    batch_tokens: int = 4096
    seed: int = 0


def batch_features(model, input_ids, attention_mask):
    """Final hidden states (the LM head's input) at the real tokens: (N, d) float32, and
    for each the id of the next real token (or -1 where the sequence ends)."""

    with torch.no_grad():
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = hidden.last_hidden_state.float()
    mask = attention_mask.bool()
    following = torch.full_like(input_ids, -1)
    following[:, :-1] = torch.where(mask[:, 1:], input_ids[:, 1:], -1)
    return hidden[mask], following[mask]


def head_parameters(model):
    """The LM head's weight (V x d) and bias (or None), as detached float32 copies."""
    head = model.get_output_embeddings()
    if head is None:
        raise ConfigError("the probe has no output embedding (LM head); use a causal LM")
    weight = head.weight.detach().float().clone()
    bias = head.bias.detach().float().clone() if getattr(head, "bias", None) is not None else None
    return weight, bias


def finetune_head(weight, bias, features, targets, config: HeadFineTune):
    """Softmax regression of ``targets`` on cached ``features``, starting from the probe's
    head: the same optimisation as fine-tuning only the head of the full model (the body is
    frozen and in eval mode, so its features do not change), at a fraction of the cost."""

    if config.epochs <= 0:
        return weight, bias
    keep = targets >= 0
    features, targets = features[keep], targets[keep]
    weight = torch.nn.Parameter(weight.clone())
    bias = torch.nn.Parameter(bias.clone()) if bias is not None else None
    params = [weight] + ([bias] if bias is not None else [])
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(features)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for first in range(0, n, config.batch_tokens):
            index = order[first : first + config.batch_tokens]
            logits = features[index.to(features.device)] @ weight.T
            if bias is not None:
                logits = logits + bias
            loss = torch.nn.functional.cross_entropy(logits, targets[index.to(targets.device)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return weight.detach(), (bias.detach() if bias is not None else None)


def _variance_chunks(features, weight, bias=None):
    """``(h, p * (1 - p))`` over row chunks of the features, ``p = softmax(W h + b)``:
    chunked so a (rows x V) block stays within ``CHUNK_ELEMENTS`` for a large vocabulary."""

    rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
    for first in range(0, features.shape[0], rows):
        h = features[first : first + rows]
        logits = h @ weight.T
        if bias is not None:
            logits = logits + bias
        p = torch.softmax(logits, dim=-1)
        yield h, p * (1 - p)


def closed_form_head_fim(features, weight, bias=None):
    """Expected head FIM diagonal, averaged over tokens: (V x d) for W (and (V,) for b).

    ``F[v, j] = mean_t p_t[v] (1 - p_t[v]) h_t[j]^2``, computed in row chunks."""

    n = features.shape[0]
    fim_w = torch.zeros_like(weight)
    fim_b = torch.zeros(weight.shape[0], device=weight.device) if bias is not None else None
    for h, variance in _variance_chunks(features, weight, bias):
        fim_w += variance.T @ (h * h)
        if fim_b is not None:
            fim_b += variance.sum(0)
    fim_w /= n
    if fim_b is not None:
        fim_b /= n
    return fim_w, fim_b


def closed_form_fim_row_means(features, weight, bias=None):
    """The row means of ``closed_form_head_fim``'s F without forming F:
    ``mean_j F[v, j] = mean_t p_t[v] (1 - p_t[v]) mean_j h_t[j]^2`` — a matrix-vector
    product in place of the (V x n) @ (n x d) one (about 3x faster at SmolLM2's size)."""

    out = torch.zeros(weight.shape[0], device=weight.device, dtype=weight.dtype)
    for h, variance in _variance_chunks(features, weight, bias):
        out += variance.T @ (h * h).mean(dim=1)
    return out / features.shape[0]


def closed_form_embedding(
    model, input_ids, attention_mask, finetune: HeadFineTune = HeadFineTune()
) -> np.ndarray:
    """The closed-form Task2Vec embedding of one batch: the row means of the head FIM
    (one value per vocabulary entry, as the reference keeps per weight matrix)."""
    features, targets = batch_features(model, input_ids, attention_mask)
    weight, bias = head_parameters(model)
    weight, bias = (
        weight.to(features.device),
        bias.to(features.device) if bias is not None else None,
    )
    weight, bias = finetune_head(weight, bias, features, targets, finetune)
    return closed_form_fim_row_means(features, weight, bias).cpu().numpy().astype(np.float64)


def montecarlo_fim(
    model,
    input_ids,
    attention_mask,
    finetune: HeadFineTune = HeadFineTune(),
    minibatch: int = 8,
    samples: int = 1,
    seed: int = 0,
) -> dict:
    """Monte Carlo FIM diagonal of every weight matrix, averaged over real tokens:
    ``{name: (rows x cols) tensor}``. ``samples`` draws of targets per position."""

    probe = as_float32(copy.deepcopy(model)).eval()
    head = probe.get_output_embeddings()
    # untie: the head gets its own copy, so fine-tuning it cannot move the input embedding
    head.weight = torch.nn.Parameter(head.weight.detach().clone())
    if finetune.epochs > 0:  # the cached features are only needed for the fine-tune
        features, targets = batch_features(probe, input_ids, attention_mask)
        weight, bias = head_parameters(probe)
        weight, bias = finetune_head(weight, bias, features, targets, finetune)
        with torch.no_grad():
            head.weight.copy_(weight)
            if bias is not None:
                head.bias.copy_(bias)
    matrices = {name: p for name, p in probe.named_parameters() if p.dim() >= 2}
    for p in probe.parameters():
        p.requires_grad_(p.dim() >= 2)
    totals = {name: torch.zeros_like(p) for name, p in matrices.items()}
    generator = torch.Generator(device=input_ids.device).manual_seed(seed)
    mask = attention_mask.bool()
    for _ in range(samples):
        for first in range(0, len(input_ids), minibatch):
            ids = input_ids[first : first + minibatch]
            real = mask[first : first + minibatch]
            logits = probe(input_ids=ids, attention_mask=attention_mask[first : first + minibatch])
            logits = logits.logits.float()
            with torch.no_grad():  # the target of position t is drawn from p_t itself
                probabilities = torch.softmax(logits, dim=-1).reshape(-1, logits.shape[-1])
                sampled = torch.multinomial(probabilities, 1, generator=generator)
                sampled = sampled.reshape(ids.shape)
            log_probs = torch.log_softmax(logits, dim=-1)
            picked = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
            loss = -(picked * real).sum()  # padding masked
            probe.zero_grad(set_to_none=True)
            loss.backward()
            for name, p in matrices.items():
                totals[name] += p.grad.detach() ** 2
    n_tokens = int(mask.sum()) * samples
    return {name: total / n_tokens for name, total in totals.items()}


def montecarlo_embedding(model, input_ids, attention_mask, **kwargs) -> np.ndarray:
    """The Beyond Scale embedding: per weight matrix, the mean FIM diagonal of each row,
    concatenated in parameter order."""
    fim = montecarlo_fim(model, input_ids, attention_mask, **kwargs)
    return np.concatenate([f.mean(dim=1).cpu().numpy() for f in fim.values()]).astype(np.float64)
