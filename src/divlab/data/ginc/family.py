"""GINC concept families (Xie et al. 2021, "An Explanation of In-context Learning as
Implicit Bayesian Inference"; reference: p-lambda/incontext-learning ``generate_data.py``).

A hidden state is a pair (value v, slot s), flattened as ``v * n_slots + s``. Emissions
are deterministic: state (v, s) emits symbol ``E[v, s]``, with ``E[:, 0]`` the delimiter
``/`` (symbol 0) and ``E[v, s >= 1]`` random non-delimiter symbols. ``E`` and the value
transition matrix are shared by every concept of a family:

    A_v = (1 - vic) * M_v + vic * I,     M = sum_k w_k P_k,   w = softmax((U - 0.5) / T_trans)

with ``P_k`` random permutation matrices (as many as the matrix has rows). A *concept* is
its own slot transition matrix ``A_s`` (same construction, without the identity term)
and its start distribution ``softmax((U - 0.5) / T_start)`` over the joint states. The
full transition is ``kron(A_v, A_s)``: value and slot move independently, which the
sampler and the forward algorithm exploit.

Unlike the reference, concept ``i`` is derived on demand from ``(family seed, i)`` with
its own random stream, so it is the same concept whether a family is asked for 10 or
10,000 concepts, and a concept costs its two small arrays (1.6 KB at 10 x 10), not a
pickled HMM. Hand-written: the generator is the product (hmmlearn is the baseline in
``bench/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from divlab import seeds
from divlab.errors import ConfigError, format_validation_error

DELIMITER = 0  # symbol id of "/"; GINC symbol ids equal tokenizer ids (specials come after)

# Fixed words of the random streams, so every array has its own reproducible stream.
_FAMILY_STREAM = 0
_CONCEPT_STREAM = 1


class FamilySpec(BaseModel):
    """The parameters that define a concept family (BRIEF section 3; paper defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(50, ge=2, le=65000, description="symbols incl. the delimiter")
    n_values: int = Field(10, ge=1, le=4096)
    n_slots: int = Field(10, ge=2, le=4096, description="slot 0 is the delimiter slot")
    value_identity_coeff: float = Field(0.9, ge=0.0, le=1.0)
    transition_temp: float = Field(0.1, gt=0.0)
    start_temp: float = Field(10.0, gt=0.0)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check_state_space(self) -> FamilySpec:
        if self.n_values * self.n_slots > 65536:
            raise ValueError(
                f"n_values * n_slots = {self.n_values * self.n_slots} hidden states is too many "
                "(at most 65536)"
            )
        return self


@dataclass(frozen=True)
class Concept:
    """One concept: its slot transition matrix and its start distribution."""

    index: int
    slot_transitions: np.ndarray  # (n_slots, n_slots), rows sum to 1
    start: np.ndarray  # (n_values * n_slots,), sums to 1


@dataclass(frozen=True)
class ConceptArrays:
    """Parameters of several concepts stacked for vectorised sampling and scoring."""

    indices: np.ndarray  # (C,) family indices
    slot_transitions: np.ndarray  # (C, n_slots, n_slots)
    start: np.ndarray  # (C, n_values * n_slots)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def nbytes(self) -> int:
        return self.indices.nbytes + self.slot_transitions.nbytes + self.start.nbytes


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def permutation_mixture(n: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """``sum_k w_k P_k`` over ``n`` random ``n x n`` permutation matrices,
    ``w = softmax((U - 0.5) / temperature)``, as in the reference's ``generate_transmat_block``."""
    weights = _softmax((rng.random(n) - 0.5) / temperature)
    matrix = np.zeros((n, n))
    rows = np.arange(n)
    for w in weights:
        matrix[rows, rng.permutation(n)] += w
    return matrix


class ConceptFamily:
    """A GINC concept family. Concepts are addressed by a non-negative integer index."""

    def __init__(self, spec: FamilySpec | None = None, **kwargs: object) -> None:
        if spec is None:
            try:
                spec = FamilySpec(**kwargs)  # type: ignore[arg-type]
            except Exception as e:  # pydantic ValidationError
                raise ConfigError(format_validation_error(e, "GINC family")) from None
        elif kwargs:
            raise TypeError("pass either a FamilySpec or keyword arguments, not both")
        self.spec = spec

    def __repr__(self) -> str:
        return f"ConceptFamily({', '.join(f'{k}={v}' for k, v in self.spec.model_dump().items())})"

    @property
    def n_states(self) -> int:
        return self.spec.n_values * self.spec.n_slots

    @cached_property
    def _shared(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.spec
        rng = seeds.rng(s.seed, _FAMILY_STREAM)
        emissions = rng.integers(1, s.vocab_size, size=(s.n_values, s.n_slots), dtype=np.int64)
        emissions[:, 0] = DELIMITER
        mixture = permutation_mixture(s.n_values, s.transition_temp, rng)
        values = (1.0 - s.value_identity_coeff) * mixture + s.value_identity_coeff * np.eye(
            s.n_values
        )
        emissions.setflags(write=False)
        values.setflags(write=False)
        return emissions, values

    @property
    def emissions(self) -> np.ndarray:
        """``E[v, s]``: the symbol emitted by state (v, s); shape (n_values, n_slots)."""
        return self._shared[0]

    @property
    def value_transitions(self) -> np.ndarray:
        """``A_v``: shape (n_values, n_values), shared by all concepts."""
        return self._shared[1]

    def concept(self, index: int) -> Concept:
        """Concept ``index``, derived from (family seed, index) alone."""
        index = int(index)
        if index < 0:
            raise ConfigError(f"concept index must be >= 0, got {index}")
        s = self.spec
        rng = seeds.rng(s.seed, _CONCEPT_STREAM, index)
        slots = permutation_mixture(s.n_slots, s.transition_temp, rng)
        start = _softmax((rng.random(self.n_states) - 0.5) / s.start_temp)
        return Concept(index=index, slot_transitions=slots, start=start)

    def concepts(self, indices: list[int] | np.ndarray) -> ConceptArrays:
        """Stack the parameters of several concepts (C x n_slots^2 + C x n_states floats)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        items = [self.concept(i) for i in indices]
        if not items:
            raise ConfigError("a concept set needs at least one concept")
        return ConceptArrays(
            indices=indices,
            slot_transitions=np.stack([c.slot_transitions for c in items]),
            start=np.stack([c.start for c in items]),
        )

    def transition_matrix(self, index: int) -> np.ndarray:
        """The full (n_states x n_states) transition matrix ``kron(A_v, A_s)`` of a concept."""
        return np.kron(self.value_transitions, self.concept(index).slot_transitions)

    def emission_matrix(self) -> np.ndarray:
        """One-hot emission probabilities, shape (n_states, vocab_size)."""
        matrix = np.zeros((self.n_states, self.spec.vocab_size))
        matrix[np.arange(self.n_states), self.emissions.reshape(-1)] = 1.0
        return matrix

    def to_dict(self) -> dict:
        return self.spec.model_dump()
