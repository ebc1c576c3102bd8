"""Ids of an experiment's data sets and runs, derived by hashing (seeds: ``divlab.seeds``).

One mechanism each, used by every kind:

* ``stable_hash``: a short SHA-256 of a JSON-able object (sorted keys), the same on every
  machine; paths inside the experiment folder enter it through ``relative``, so a moved or
  copied folder keeps its ids (and its finished runs);
* ``run_id``: ``<name>-s<seed>-<hash>`` of a run, the hash covering everything that
  defines what it trains and how it is evaluated;
* ``rng`` / ``derive_seed``: an independent random stream (a numpy Generator, or an
  integer seed for a component that takes one) from one of the spec's seeds and a key of
  ints and strings (``rng(seed, "documents", "mix003")``): different keys never share a
  stream, and no kind invents its own derivation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def stable_hash(obj, length: int = 12) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def relative(path: str | Path, root: str | Path) -> str:
    """``path`` inside the experiment folder ``root`` as a relative path (else as given)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def run_id(name: str, seed: int, *defining) -> str:
    """The id of a run of ``name`` with ``seed``; ``defining`` is what else defines it."""
    return f"{name}-s{seed}-" + stable_hash(list(defining))
