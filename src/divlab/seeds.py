"""Random streams derived from a seed: one mechanism for every stage and experiment kind.

``rng(seed, *key)`` is a numpy Generator of its own for ``key`` (ints, and strings such as
``"documents"`` or a domain's name), and ``derive_seed(seed, *key)`` an integer seed for a
component that takes one: different keys never share a stream, the same key always gives
the same stream, and ``rng(seed, a, b)`` is ``default_rng(SeedSequence([seed, a, b]))``.
"""

from __future__ import annotations

import zlib

import numpy as np


def seed_sequence(seed: int, *key: int | str) -> np.random.SeedSequence:
    """The seed sequence of ``(seed, key...)``: integers (numpy's too) enter as they are,
    strings as their CRC-32."""
    words = [
        int(k) if isinstance(k, int | np.integer) else zlib.crc32(str(k).encode()) for k in key
    ]
    return np.random.SeedSequence([seed, *words])


def rng(seed: int, *key: int | str) -> np.random.Generator:
    """A random generator of its own for ``key``, derived from the spec's ``seed``."""
    return np.random.default_rng(seed_sequence(seed, *key))


def derive_seed(seed: int, *key: int | str) -> int:
    """An integer seed of its own for ``key`` (for a data set or model that takes one)."""
    return int(seed_sequence(seed, *key).generate_state(1)[0])
