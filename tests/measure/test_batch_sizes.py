"""The size check a spec makes before any data exists agrees with make_batches."""

import itertools

import numpy as np
import pytest

from divlab.errors import DataError
from divlab.measure.batches import make_batches, size_problem


def _fits(documents, n_batches, batch_size, seq_len, construction) -> bool:
    """Whether make_batches accepts these documents and settings."""
    try:
        make_batches(documents, n_batches, batch_size, seq_len, construction, 7, seed=0)
    except DataError:
        return False
    return True


@pytest.mark.parametrize("construction", ["blocks", "documents"])
def test_size_problem_never_passes_what_make_batches_refuses(construction):
    grid = itertools.product([3, 8, 20], [16, 40], [2, 4], [2, 3], [8, 16])
    for n_docs, doc_length, n_batches, batch_size, seq_len in grid:
        documents = [np.arange(doc_length) % 7 for _ in range(n_docs)]
        problem = size_problem(n_docs, doc_length, n_batches, batch_size, seq_len, construction)
        fits = _fits(documents, n_batches, batch_size, seq_len, construction)
        if problem is None:
            assert fits, (n_docs, doc_length, n_batches, batch_size, seq_len)
        if not fits:
            assert problem is not None


@pytest.mark.parametrize("construction", ["blocks", "documents"])
def test_lengths_problem_never_passes_what_make_batches_refuses(construction):
    """On documents of uneven lengths (a text corpus), checked before any probe runs."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from divlab.measure.batches import lengths_problem

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(
        lengths=st.lists(st.integers(1, 60), min_size=1, max_size=40),
        n_batches=st.integers(2, 5),
        batch_size=st.integers(1, 4),
        seq_len=st.integers(2, 20),
    )
    def agrees(lengths, n_batches, batch_size, seq_len):
        documents = [np.arange(n) % 7 for n in lengths]
        problem = lengths_problem(lengths, n_batches, batch_size, seq_len, construction)
        fits = _fits(documents, n_batches, batch_size, seq_len, construction)
        if problem is None:
            assert fits
        if construction == "documents":
            assert (problem is None) == fits  # exact: the same count

    agrees()
