"""Concept sets for the experiment plans (BRIEF section 2).

The eval set ``C_test`` is concepts ``0 .. n_eval - 1`` of a family. Plan 1 (``nested``)
trains on ``C_k``: the first ``k`` of one seeded permutation of ``C_test``, so
``C_k`` is a subset of ``C_k'`` whenever ``k < k'``. Plan 2 (``added``) trains on ``C_k``
plus ``k_added`` concepts from outside ``C_test`` (indices ``n_eval, n_eval + 1, ...``),
again nested in ``k_added``. Out-of-distribution prompt concepts live in a separate index
range, ``OOD_OFFSET + j``, that no plan ever trains on.
"""

from __future__ import annotations

from divlab import seeds
from divlab.errors import ConfigError

OOD_OFFSET = 1 << 40


def _check_count(name: str, value: int) -> None:
    if int(value) != value or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


def eval_concepts(n_eval: int) -> list[int]:
    """``C_test``: concepts 0 .. n_eval - 1."""
    _check_count("n_eval", n_eval)
    if n_eval < 1:
        raise ConfigError("n_eval must be at least 1 (the eval set needs a concept)")
    return list(range(n_eval))


def nested_concepts(n_eval: int, k: int, order_seed: int = 0) -> list[int]:
    """``C_k``: the first ``k`` concepts of a seeded permutation of ``C_test``."""
    eval_set = eval_concepts(n_eval)
    _check_count("k", k)
    if k < 1 or k > n_eval:
        raise ConfigError(
            f"k={k} must be between 1 and the eval set's size n_eval={n_eval}; "
            "to train on concepts outside the eval set use plan 'added'"
        )
    order = seeds.rng(order_seed, 7).permutation(n_eval)
    return [eval_set[i] for i in order[:k]]


def added_concepts(n_eval: int, k: int, k_added: int, order_seed: int = 0) -> list[int]:
    """Plan 2: ``C_k`` plus ``k_added`` concepts that are not in ``C_test``."""
    _check_count("k_added", k_added)
    base = nested_concepts(n_eval, k, order_seed) if k > 0 else []
    if k == 0:
        eval_concepts(n_eval)
    if not base and k_added == 0:
        raise ConfigError("plan 'added' needs k >= 1 or k_added >= 1")
    return base + [n_eval + j for j in range(k_added)]


def ood_concepts(n: int) -> list[int]:
    """``n`` concepts reserved for out-of-distribution prompts (never trained on)."""
    _check_count("n_ood_concepts", n)
    return [OOD_OFFSET + j for j in range(n)]
