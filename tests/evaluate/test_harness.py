"""lm-eval tasks on divlab checkpoints: a local rolling-loglikelihood task scored through
lm-eval agrees with divlab's own per-token loss, and unknown task names fail early."""

import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from divlab.data.store import open_dataset
from divlab.errors import ConfigError, DataError
from divlab.evaluate.harness import check_tasks, flatten_results, score_checkpoint
from divlab.evaluate.loss import token_nll
from divlab.train import train
from tests.train.test_loop import tiny_spec

TASK = "ginc_rolling"
N_DOCS = 4
DOC_TOKENS = 48  # under the tiny model's 64-token context: one rolling window per document
# measured: lm-eval's NLL per token and divlab's agree to 1e-8 relative (9.7e-9 here)
REL_TOL = 1e-6

TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
"""


@pytest.fixture(scope="module")
def harness_case(one_concept, tmp_path_factory):
    """A trained tiny model, N_DOCS eval documents (token ids and text) and a folder
    holding a local lm-eval task over those texts."""
    root = tmp_path_factory.mktemp("harness")
    train(tiny_spec(one_concept), root / "run")
    dataset = open_dataset(one_concept)
    tokenizer = dataset.tokenizer()
    documents = [doc[:DOC_TOKENS] for doc in dataset.documents("eval")[:N_DOCS]]
    texts = [tokenizer.decode(doc.tolist()) for doc in documents]
    for doc, text in zip(documents, texts, strict=True):  # the text re-tokenizes as the ids
        assert tokenizer.encode(text, add_special_tokens=False) == doc.tolist()
    tasks = root / "tasks"
    tasks.mkdir()
    data = tasks / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tasks / f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, data=data))
    return root / "run" / "model", documents, texts, tasks, dataset.eos_token_id


def test_rolling_task_matches_divlab_loss(harness_case):
    model_dir, documents, texts, tasks, eos = harness_case
    threads = torch.get_num_threads()
    scores = score_checkpoint(model_dir, [TASK], include_path=tasks, limit=N_DOCS)
    assert torch.get_num_threads() == threads
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert math.isfinite(scores[f"{TASK}/{metric}"]), scores
    assert not any(key.endswith(",none") for key in scores)

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    nll = token_nll(model, documents, prefix_id=eos, context=model.config.max_position_embeddings)
    divlab_nll = float(np.concatenate(nll).mean())
    n_tokens = sum(len(d) for d in documents)
    n_words = sum(len(t.split()) for t in texts)
    n_bytes = sum(len(t.encode()) for t in texts)
    from_words = math.log(scores[f"{TASK}/word_perplexity"]) * n_words / n_tokens
    from_bytes = scores[f"{TASK}/bits_per_byte"] * math.log(2) * n_bytes / n_tokens
    assert from_words == pytest.approx(divlab_nll, rel=REL_TOL)
    assert from_bytes == pytest.approx(divlab_nll, rel=REL_TOL)
    # the model learned something: better than uniform over the 50 GINC tokens
    assert divlab_nll < math.log(50)


def test_tasks_are_checked_before_any_model(harness_case, tmp_path):
    model_dir, _, _, tasks, _ = harness_case
    check_tasks([TASK], include_path=tasks)
    with pytest.raises(ConfigError, match=r"no_such_task.*tasks"):
        check_tasks([TASK, "no_such_task"], include_path=tasks)
    # the task check comes before the model: an unknown task fails fast on a real model
    with pytest.raises(ConfigError, match="no_such_task"):
        score_checkpoint(model_dir, ["no_such_task"], include_path=tasks)
    with pytest.raises(DataError, match="does not exist"):
        score_checkpoint(tmp_path / "missing", [TASK], include_path=tasks)


def test_results_flatten_to_numbers():
    results = {
        "results": {
            "arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.01},
            "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": "N/A"},
        }
    }
    assert flatten_results(results) == {
        "arc_easy/acc": 0.5,
        "arc_easy/acc_stderr": 0.01,
        "gsm8k/exact_match,strict-match": 0.25,
    }
