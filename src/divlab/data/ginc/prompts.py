"""In-context-learning prompt sets (Xie et al. 2021, the reference's ``ID_sample`` /
``OOD_sample`` prompts).

A prompt of ``n`` examples of length ``L`` from concept ``c``: pick a start slot
``s0 in [1, n_slots)``; each example starts at (random value, s0), runs ``L - 1``
transitions of ``c`` and is followed by the delimiter; the test example is cut after its
first ``L - 1`` tokens ``x``. The label is the argmax of the *true* concept's next-token
posterior given ``x`` with the start restricted to slot ``s0`` (uniform over values),
not the sampled token (kept as ``sampled_next``).

``pattern="random"`` reproduces the reference's OOD prompts instead: random slot patterns
with a constant value, scored under ``c`` from a uniform start. Such an ``x`` can be
impossible under ``c``; the reference then argmaxes a NaN posterior and labels the prompt
with the delimiter. Here an impossible test example is redrawn until ``c`` can produce it
(the number of redraws is recorded), so every label is a real argmax.
"""

from __future__ import annotations

import numpy as np

from divlab.data.ginc.family import DELIMITER, ConceptFamily
from divlab.data.ginc.oracle import forward, next_token_distribution, slot_start
from divlab.data.ginc.sampler import sample_documents
from divlab.errors import ConfigError, DataError

_MAX_REDRAWS = 1000


def make_prompts(
    family: ConceptFamily,
    concept_ids: list[int],
    n_prompts: int,
    n_examples: int,
    example_length: int,
    rng: np.random.Generator,
    pattern: str = "hmm",
) -> dict[str, np.ndarray]:
    """``n_prompts`` prompts, each from a concept drawn uniformly from ``concept_ids``.

    Returns columns: ``tokens`` (P, n * (L + 1) + L - 1) uint16, ``label``, ``label_prob``,
    ``label_margin`` (top-1 minus top-2 posterior), ``sampled_next``, ``concept``,
    ``start_slot``, ``redraws``.
    """
    if example_length < 2:
        raise ConfigError(f"example length must be >= 2 (got {example_length})")
    if n_examples < 0 or n_prompts < 1:
        raise ConfigError("n_examples must be >= 0 and n_prompts >= 1")
    if pattern not in ("hmm", "random"):
        raise ConfigError(f"unknown prompt pattern {pattern!r}; use 'hmm' or 'random'")
    arrays = family.concepts(concept_ids)
    n_values, n_slots = family.spec.n_values, family.spec.n_slots
    per_prompt = n_examples + 1
    rows = rng.integers(0, len(arrays), size=n_prompts)
    start_slot = rng.integers(1, n_slots, size=n_prompts)
    example_rows = np.repeat(rows, per_prompt)

    def draw(count_rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        if pattern == "hmm":
            starts = rng.integers(0, n_values, size=len(count_rows)) * n_slots + slots
            return sample_documents(
                family, arrays, count_rows, example_length, rng, start_states=starts
            )
        values = rng.integers(0, n_values, size=(len(count_rows), 1))
        random_slots = rng.integers(1, n_slots, size=(len(count_rows), example_length))
        return family.emissions[values, random_slots].astype(np.uint16)

    examples = draw(example_rows, np.repeat(start_slot, per_prompt)).reshape(
        n_prompts, per_prompt, example_length
    )
    if pattern == "hmm":
        start = slot_start(family, start_slot)
    else:
        start = np.full((n_prompts, family.n_states), 1.0 / family.n_states)

    redraws = np.zeros(n_prompts, dtype=np.int64)
    while True:
        x = examples[:, -1, :-1]
        log_likelihood, alpha = forward(family, arrays, rows, x, start=start)
        impossible = ~np.isfinite(log_likelihood)
        if not impossible.any():
            break
        if redraws.max() >= _MAX_REDRAWS:
            raise DataError(
                f"could not draw a test example that the concept can produce in {_MAX_REDRAWS} "
                "tries; use pattern='hmm' for this family"
            )
        redraws[impossible] += 1
        examples[impossible, -1] = draw(rows[impossible], start_slot[impossible])

    posterior = next_token_distribution(family, arrays, rows, alpha)
    order = np.argsort(-posterior, axis=1, kind="stable")
    top = posterior[np.arange(n_prompts), order[:, 0]]
    second = posterior[np.arange(n_prompts), order[:, 1]] if posterior.shape[1] > 1 else 0.0

    with_delimiters = np.concatenate(
        [examples, np.full((n_prompts, per_prompt, 1), DELIMITER, dtype=np.uint16)], axis=2
    ).reshape(n_prompts, -1)
    return {
        "tokens": with_delimiters[:, :-2],  # drop the final delimiter and the test target
        "label": order[:, 0].astype(np.int64),
        "label_prob": top,
        "label_margin": top - second,
        "sampled_next": examples[:, -1, -1].astype(np.int64),
        "concept": arrays.indices[rows],
        "start_slot": start_slot,
        "redraws": redraws,
    }
