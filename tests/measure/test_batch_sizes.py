"""The size check a spec makes before any data exists agrees with make_batches."""

import itertools

import numpy as np
import pytest

from divlab.errors import DataError
from divlab.measure.batches import make_batches, size_problem


@pytest.mark.parametrize("construction", ["blocks", "documents"])
def test_size_problem_never_passes_what_make_batches_refuses(construction):
    grid = itertools.product([3, 8, 20], [16, 40], [2, 4], [2, 3], [8, 16])
    for n_docs, doc_length, n_batches, batch_size, seq_len in grid:
        documents = [np.arange(doc_length) % 7 for _ in range(n_docs)]
        problem = size_problem(n_docs, doc_length, n_batches, batch_size, seq_len, construction)
        try:
            make_batches(documents, n_batches, batch_size, seq_len, construction, 7, seed=0)
            fits = True
        except DataError:
            fits = False
        if problem is None:
            assert fits, (n_docs, doc_length, n_batches, batch_size, seq_len)
        if not fits:
            assert problem is not None
