"""The one derivation of random streams (``divlab.seeds``)."""

import numpy as np

from divlab import seeds


def test_integer_keys_are_the_plain_numpy_seed_sequence():
    expected = np.random.default_rng(np.random.SeedSequence([3, 0xDA7A, 7])).random(4)
    assert np.array_equal(seeds.rng(3, 0xDA7A, 7).random(4), expected)
    assert np.array_equal(seeds.rng(3, np.int64(0xDA7A), np.uint32(7)).random(4), expected)
    state = np.random.SeedSequence([3, 5]).generate_state(1)[0]
    assert seeds.derive_seed(3, 5) == int(state)


def test_keys_give_independent_reproducible_streams():
    a, b = seeds.rng(1, "documents", "mix000"), seeds.rng(1, "documents", "mix001")
    assert not np.array_equal(a.random(8), b.random(8))
    assert np.array_equal(seeds.rng(1, "order").random(8), seeds.rng(1, "order").random(8))
    assert seeds.derive_seed(1, "probe") != seeds.derive_seed(2, "probe")
