"""Task2Vec embeddings cached on disk, so alignment against many training sets reuses the
eval set's embeddings (and a relaunched measurement reuses everything).

The key of a batch's embedding is what determines it: the probe's weights (a hash of
every parameter's bytes, computed once per probe), the estimator settings that change the
embedding (estimator, head fine-tune, Monte Carlo sampling, seed) and the batch's token
ids and mask themselves — not a data set's name — so a stale entry cannot be hit by
changed data, and the same batch drawn from two paths is computed once. Entries are
``.npy`` files (``allow_pickle=False``) written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from divlab.io import atomic_file

# DiversitySettings fields that change an embedding (distance, bootstrap, batch shape do
# not: the shape is in the batch's bytes).
EMBEDDING_FIELDS = (
    "estimator",
    "finetune_epochs",
    "finetune_lr",
    "mc_minibatch",
    "mc_samples",
    "seed",
)


def probe_fingerprint(probe) -> str:
    """A hash of every parameter of the probe (memoised on the probe object)."""
    cached = getattr(probe, "_fingerprint", None)
    if cached:
        return cached
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in probe.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_u8()).numpy())
    probe._fingerprint = digest.hexdigest()
    return probe._fingerprint


def _u8():

    return torch.uint8


class EmbeddingCache:
    """A folder of embeddings keyed by (probe, estimator settings, batch contents)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.hits = self.misses = 0

    def key(self, probe, settings, input_ids: np.ndarray, mask: np.ndarray, index: int) -> str:
        fields = {name: getattr(settings, name) for name in EMBEDDING_FIELDS}
        if settings.estimator == "montecarlo":
            fields["batch_index"] = index  # its sampling seed is seed + batch index
        digest = hashlib.blake2b(digest_size=20)
        digest.update(probe_fingerprint(probe).encode())
        digest.update(json.dumps(fields, sort_keys=True).encode())
        for array in (input_ids, mask):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        path = self.root / key[:2] / f"{key}.npy"
        if not path.exists():
            self.misses += 1
            return None
        self.hits += 1
        return np.load(path, allow_pickle=False)

    def put(self, key: str, embedding: np.ndarray) -> None:
        with atomic_file(self.root / key[:2] / f"{key}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(embedding), allow_pickle=False)
