"""An instruction pool on GINC whose every response's correctness is known (BRIEF section 11).

One row is one prompt -> response pair. The prompt is an in-context task of a concept,
exactly an ICL prompt of ``divlab.data.ginc.prompts.make_prompts`` (``pattern="hmm"``):
``n`` examples of length ``L`` starting in one slot ``s0``, each followed by the delimiter,
then the test example cut after its first ``L - 1`` tokens ``x``. The *Bayes response* of
length ``l`` is what the true concept, started in slot ``s0`` (values uniform), predicts:

    r_1 = argmax_a P(x_L = a | x, c, s0)                (the prompt's ``label``)
    r_k = argmax_a P(x_{L+k-1} = a | x, r_1..r_{k-1}, c, s0)      for k = 2..l

(greedy decoding under the oracle; ties go to the lowest symbol id, as ``make_prompts``).
Formats (``n_examples``, ``example_length``), response lengths and concepts are drawn per
row uniformly from the given choices, so the pool covers a known set of formats.

Knobs, each recorded per row:

* quality: exactly ``round(wrong_share * n)`` rows (chosen by seed) get a *wrong* first
  token: ``"random"``, a uniformly random GINC symbol other than the Bayes label, drawn
  from all ``vocab_size`` symbols *including* the delimiter, because the delimiter is a
  real Bayes label (about one prompt in ten at the paper's family) and the ICL evaluation
  argmaxes over all of them; or ``"second"``, the posterior's second choice (stable order:
  if several tokens tie, the lowest id). The later tokens of a wrong response stay the
  Bayes continuation given the *correct* first token, so a wrong row differs from its
  Bayes response in the first token only.
* duplicates: ``round(duplicate_share * n)`` rows are exact copies (prompt, response and
  every recorded field) of an earlier row of the same correctness, so the wrong count stays
  exact; ``duplicate_of`` is the original's ``example_id`` (else -1).

Hand-written: the pool is a thin layer over the GINC prompt sets and the oracle (its
forward algorithm and greedy continuation, started in the prompt's slot with
``oracle.slot_start``); no library knows GINC's ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from divlab import seeds
from divlab.data.ginc.family import ConceptArrays, ConceptFamily
from divlab.data.ginc.oracle import (
    forward,
    greedy_continuation,
    next_token_distribution,
    slot_start,
)
from divlab.data.ginc.prompts import make_prompts
from divlab.errors import ConfigError, DataError

WRONG_KINDS = ("random", "second")

COLUMNS = (
    "example_id",
    "prompt",
    "response",
    "bayes_response",
    "correct",
    "wrong_kind",
    "concept",
    "n_examples",
    "example_length",
    "response_length",
    "start_slot",
    "label_prob",
    "response_prob",
    "duplicate_of",
)


def _choices(name: str, values: Sequence[int], minimum: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.int64).reshape(-1)
    if array.size == 0:
        raise ConfigError(f"{name} needs at least one value")
    if array.min() < minimum:
        raise ConfigError(f"every {name} value must be >= {minimum} (got {array.tolist()})")
    return array


def _check_share(name: str, share: float) -> float:
    share = float(share)
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"{name} must be in [0, 1) (got {share})")
    return share


def bayes_posterior(
    family: ConceptFamily,
    concepts: ConceptArrays,
    rows: np.ndarray,
    tokens: np.ndarray,
    start_slot: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(P(next token | tokens, concept, start slot), alpha)`` for each row of ``tokens``
    (D, T), the start restricted to ``start_slot`` with values uniform (as the ICL labels)."""
    start = slot_start(family, start_slot)
    _, alpha = forward(family, concepts, rows, tokens, start=start)
    return next_token_distribution(family, concepts, rows, alpha), alpha


def build_pool(
    family: ConceptFamily,
    concept_ids: Sequence[int],
    n: int,
    seed: int,
    *,
    n_examples: Sequence[int] = (2, 4),
    example_lengths: Sequence[int] = (3, 5),
    response_lengths: Sequence[int] = (1,),
    wrong_share: float = 0.0,
    wrong_kind: str = "random",
    duplicate_share: float = 0.0,
) -> pd.DataFrame:
    """A pool of ``n`` instruction examples (module docstring), one row each, columns
    ``COLUMNS``: token arrays ``prompt``, ``response`` and ``bayes_response``; ``correct``
    (response == Bayes response), ``wrong_kind`` ("" when correct), the format
    (``concept``, ``n_examples``, ``example_length``, ``response_length``,
    ``start_slot``), ``label_prob`` (posterior of the Bayes label), ``response_prob``
    (posterior of the response's first token) and ``duplicate_of``. Deterministic in
    (``seed``, arguments)."""
    n = int(n)
    if n < 1:
        raise ConfigError(f"a pool needs n >= 1 examples (got {n})")
    concepts_given = np.asarray(concept_ids, dtype=np.int64).reshape(-1)
    if concepts_given.size == 0:
        raise ConfigError("a pool needs at least one concept id")
    example_counts = _choices("n_examples", n_examples, 0)
    lengths = _choices("example_lengths", example_lengths, 2)
    response_choices = _choices("response_lengths", response_lengths, 1)
    if wrong_kind not in WRONG_KINDS:
        raise ConfigError(f"unknown wrong_kind {wrong_kind!r}; use one of {list(WRONG_KINDS)}")
    wrong_share = _check_share("wrong_share", wrong_share)
    duplicate_share = _check_share("duplicate_share", duplicate_share)
    n_wrong = round(wrong_share * n)
    n_duplicates = round(duplicate_share * n)
    # the first row of each correctness class must be an original
    n_classes = int(n_wrong > 0) + int(n_wrong < n)
    if n_duplicates > n - n_classes:
        raise ConfigError(
            f"duplicate_share {duplicate_share} leaves too few originals in a pool of {n} "
            f"(at most {n - n_classes} duplicates); lower it or grow n"
        )

    # which rows are wrong, and which copy an earlier row of the same correctness
    layout = seeds.rng(seed, "sft-pool", "layout")
    is_wrong = np.zeros(n, dtype=bool)
    is_wrong[layout.choice(n, size=n_wrong, replace=False)] = True
    firsts = [
        int(np.argmax(is_wrong == flag)) for flag in (True, False) if (is_wrong == flag).any()
    ]
    eligible = np.setdiff1d(np.arange(n), firsts)
    is_duplicate = np.zeros(n, dtype=bool)
    is_duplicate[layout.choice(eligible, size=n_duplicates, replace=False)] = True
    duplicate_of = np.full(n, -1, dtype=np.int64)
    for position in np.flatnonzero(is_duplicate):
        earlier = np.flatnonzero(
            ~is_duplicate[:position] & (is_wrong[:position] == is_wrong[position])
        )
        duplicate_of[position] = layout.choice(earlier)
    originals = np.flatnonzero(~is_duplicate)
    n_originals = len(originals)

    # formats per original row, then one prompt set per (n_examples, example_length) cell
    formats = seeds.rng(seed, "sft-pool", "formats")
    row_examples = formats.choice(example_counts, size=n_originals)
    row_lengths = formats.choice(lengths, size=n_originals)
    row_response = formats.choice(response_choices, size=n_originals)
    concept_set = np.unique(concepts_given)
    arrays = family.concepts(concept_set)

    prompt = [np.empty(0, dtype=np.int64)] * n_originals
    bayes = [np.empty(0, dtype=np.int64)] * n_originals
    response = [np.empty(0, dtype=np.int64)] * n_originals
    concept = np.empty(n_originals, dtype=np.int64)
    start_slot = np.empty(n_originals, dtype=np.int64)
    label_prob = np.empty(n_originals)
    response_prob = np.empty(n_originals)
    wrong_draws = seeds.rng(seed, "sft-pool", "wrong")
    original_wrong = is_wrong[originals]
    vocab_size = family.spec.vocab_size
    cells = sorted({(int(a), int(b)) for a, b in zip(row_examples, row_lengths, strict=True)})
    for count, length in cells:
        members = np.flatnonzero((row_examples == count) & (row_lengths == length))
        prompts = make_prompts(
            family,
            concepts_given.tolist(),
            len(members),
            count,
            length,
            seeds.rng(seed, "sft-pool", "prompts", count, length),
            pattern="hmm",
        )
        rows = np.searchsorted(concept_set, prompts["concept"])
        x = prompts["tokens"][:, prompts["tokens"].shape[1] - (length - 1) :].astype(np.int64)
        posterior, _ = bayes_posterior(family, arrays, rows, x, prompts["start_slot"])
        order = np.argsort(-posterior, axis=1, kind="stable")
        if not np.array_equal(order[:, 0], prompts["label"]):
            raise DataError("the pool's Bayes labels disagree with make_prompts' labels")
        longest = int(row_response[members].max())
        continuation = np.concatenate(
            [
                order[:, :1],
                greedy_continuation(
                    family,
                    arrays,
                    rows,
                    np.concatenate([x, order[:, :1]], axis=1),
                    longest - 1,
                    start=slot_start(family, prompts["start_slot"]),
                ),
            ],
            axis=1,
        )
        for j, member in enumerate(members):
            right = continuation[j, : row_response[member]].copy()
            given = right.copy()
            if original_wrong[member]:
                if wrong_kind == "second":
                    given[0] = order[j, 1]
                else:  # uniform over the vocab_size - 1 other symbols
                    other = wrong_draws.integers(0, vocab_size - 1)
                    given[0] = other + (other >= right[0])
            prompt[member] = prompts["tokens"][j].astype(np.int64)
            bayes[member] = right
            response[member] = given
            response_prob[member] = posterior[j, given[0]]
        concept[members] = prompts["concept"]
        start_slot[members] = prompts["start_slot"]
        label_prob[members] = prompts["label_prob"]

    # place originals and copy them into the duplicate rows (fresh arrays, equal content)
    source = np.empty(n, dtype=np.int64)
    source[originals] = np.arange(n_originals)
    for position in np.flatnonzero(is_duplicate):
        source[position] = source[duplicate_of[position]]
    frame = pd.DataFrame(
        {
            "example_id": np.arange(n, dtype=np.int64),
            "prompt": [prompt[s].copy() for s in source],
            "response": [response[s].copy() for s in source],
            "bayes_response": [bayes[s].copy() for s in source],
            "correct": ~is_wrong,
            "wrong_kind": np.where(is_wrong, wrong_kind, ""),
            "concept": concept[source],
            "n_examples": row_examples[source],
            "example_length": row_lengths[source],
            "response_length": row_response[source],
            "start_slot": start_slot[source],
            "label_prob": label_prob[source],
            "response_prob": response_prob[source],
            "duplicate_of": duplicate_of,
        }
    )
    return frame[list(COLUMNS)]
