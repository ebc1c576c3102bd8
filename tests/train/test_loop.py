"""The budgeted loop: learning, golden losses, resume after a kill, checkpoints, errors."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from divlab.data.store import open_dataset
from divlab.errors import ConfigError, DataError
from divlab.evaluate.loss import unigram_loss
from divlab.train import Callback, TrainSpec, train
from divlab.train.loop import LOG_EVERY

# A fixed tiny run; its first losses are pinned below (a golden test, torchtitan style).
GOLDEN = [3.99488568, 3.85064244, 3.76627398, 3.70710468, 3.60824203, 3.58700299]


def tiny_spec(data, **overrides) -> TrainSpec:
    fields = {
        "data": str(data),
        "model": {"preset": "tiny"},
        "token_budget": 8192,
        "seq_len": 64,
        "batch_tokens": 512,
        "optimizer": {"lr": 1e-2},
        "eval_docs": 8,
        **overrides,
    }
    return TrainSpec.from_dict(fields)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_golden_losses(one_concept, tmp_path):
    train(tiny_spec(one_concept, token_budget=len(GOLDEN) * 512), tmp_path / "run")
    losses = [row["loss"] for row in read_jsonl(tmp_path / "run" / "train_log.jsonl")]
    np.testing.assert_allclose(losses, GOLDEN, rtol=1e-5)


def test_the_log_is_read_in_bulk_and_still_whole(one_concept, tmp_path):
    """Losses are read every LOG_EVERY steps, not per step: the log still has one row per
    step, in order, and the prequential code length is their sum (one and four
    micro-batches)."""
    steps = LOG_EVERY + 5  # one bulk read and a partial one at the end
    for micro in (None, 2):
        out = tmp_path / f"micro-{micro}"
        spec = tiny_spec(one_concept, token_budget=steps * 512, micro_batch_size=micro)
        summary = train(spec, out)
        rows = read_jsonl(out / "train_log.jsonl")
        assert [r["step"] for r in rows] == list(range(1, steps + 1))
        predicted = spec.sequences_per_step * (spec.seq_len - 1)
        code_length = sum(r["loss"] for r in rows) * predicted
        assert summary["prequential_code_length_nats"] == pytest.approx(code_length, rel=1e-12)
        assert summary["final_train_loss"] == rows[-1]["loss"]


def test_auto_micro_batches_and_checkpointing_keep_the_losses(one_concept, tmp_path, monkeypatch):
    """``micro_batch_size: auto`` picks the largest micro-batch the plan fits in the
    device's memory; with little memory it splits the step, with the losses of one pass
    (float tolerance); activation checkpointing recomputes the same numbers."""
    from divlab.train import plan

    def losses(name, **fields):
        summary = train(tiny_spec(one_concept, token_budget=6 * 512, **fields), tmp_path / name)
        rows = read_jsonl(tmp_path / name / "train_log.jsonl")
        return summary, [r["loss"] for r in rows]

    whole, reference = losses("whole", micro_batch_size=None)
    assert whole["micro_batch_size"] == 8 and whole["attention"] == "sdpa"
    auto, plenty = losses("auto")  # 24 GiB of RAM: the whole step fits
    assert auto["micro_batch_size"] == 8 and plenty == reference
    spec = tiny_spec(one_concept)
    parameters, shape = plan.model_shape(spec, open_dataset(one_concept).vocab_size)
    two = plan.memory_bytes(parameters["total"], shape, 64, 2, False, False)
    # a device whose budget holds two sequences at a time, not four
    monkeypatch.setattr(plan, "device_memory", lambda device: (int(two / 0.9) + 1, False))
    small, split = losses("small")
    assert small["micro_batch_size"] == 2
    np.testing.assert_allclose(split, reference, rtol=1e-5)
    checkpointed, recomputed = losses(
        "checkpointed", micro_batch_size=None, activation_checkpointing=True
    )
    assert checkpointed["spec"]["activation_checkpointing"]
    np.testing.assert_allclose(recomputed, reference, rtol=1e-6)


def test_more_tokens_approach_the_oracle(one_concept, tmp_path):
    dataset = open_dataset(one_concept)
    unigram = unigram_loss(dataset.documents("eval"), dataset.documents("train"))
    finals = []
    for budget in (2048, 16384, 65536):
        summary = train(tiny_spec(one_concept, token_budget=budget), tmp_path / str(budget))
        finals.append(summary["final_eval"])
    losses = [f["loss"] for f in finals]
    gaps = [f["gap"] for f in finals]
    assert losses[0] > losses[1] > losses[2]
    assert gaps[0] > gaps[1] > gaps[2] > 0  # no model beats the oracle
    assert losses[-1] < unigram - 0.5  # clearly below a context-free model
    assert finals[-1]["oracle_loss"] < losses[-1]


class Kill(Callback):
    """Raise at a given step, after that step's logs were written (a kill at any point)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, run) -> None:
        if run.state.step == self.step:
            raise KeyboardInterrupt


def test_resume_after_kill_equals_an_uninterrupted_run(one_concept, tmp_path):
    spec = tiny_spec(
        one_concept,
        token_budget=10 * 512,
        checkpoint_every_tokens=4 * 512,
        eval_every_tokens=3 * 512,
        model={"preset": "tiny", "dropout": 0.1},  # dropout: the RNG state must resume too
    )
    whole = train(spec, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):  # before the first checkpoint: starts over
        train(spec, tmp_path / "killed", callbacks=[Kill(2)])
    assert not (tmp_path / "killed" / "checkpoint").exists()
    with pytest.raises(KeyboardInterrupt):  # after the checkpoint at step 4: resumes
        train(spec, tmp_path / "killed", callbacks=[Kill(6)])
    assert not (tmp_path / "killed" / "run.json").exists()
    assert (tmp_path / "killed" / "checkpoint").exists()
    resumed = train(spec, tmp_path / "killed")
    assert resumed["final_train_loss"] == whole["final_train_loss"]  # bitwise on CPU
    assert resumed["final_eval"] == whole["final_eval"]
    for name in ("train_log.jsonl", "curve.jsonl"):
        assert read_jsonl(tmp_path / "killed" / name) == read_jsonl(tmp_path / "whole" / name)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "whole" / "model")
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "killed" / "model")
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    # the finished run is complete: the resumable checkpoint is gone, relaunching is a no-op
    assert not (tmp_path / "killed" / "checkpoint").exists()
    assert train(spec, tmp_path / "killed") == resumed


def test_checkpoint_loads_with_hugging_face_as_it_is(one_concept, tmp_path):
    summary = train(tiny_spec(one_concept, token_budget=1024), tmp_path / "run")
    folder = tmp_path / "run" / "model"
    model = AutoModelForCausalLM.from_pretrained(folder)  # what lm-eval's `hf` model does
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token_id == model.config.eos_token_id == 52
    ids = tokenizer("/ a b c", return_tensors="pt")["input_ids"]
    generated = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=50)
    assert generated.shape == (1, ids.shape[1] + 5)
    sidecar = json.loads((folder / "divlab.json").read_text())
    assert sidecar["tokens_seen"] == 1024 and sidecar["seed"] == 0
    assert sidecar["flops_total"] == 6 * sidecar["parameters"]["total"] * 1024
    assert sidecar["versions"]["torch"] == torch.__version__
    assert summary["tokens_seen"] == 1024
    # the curve was written as the run went: an eval at 0 tokens and at the end
    curve = read_jsonl(tmp_path / "run" / "curve.jsonl")
    assert curve[0]["tokens"] == 0 and curve[-1]["tokens"] == 1024


def test_bad_input_is_refused_before_anything_is_written(one_concept, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="below one batch"):
        tiny_spec(one_concept, token_budget=100)
    with pytest.raises(ConfigError, match="unknown model preset"):
        train(tiny_spec(one_concept, model={"preset": "gigantic"}), out)
    with pytest.raises(DataError, match="not a finished divlab data set"):
        train(tiny_spec(tmp_path), out)
    with pytest.raises(DataError, match="no split"):
        train(tiny_spec(one_concept, eval_split="validation"), out)
    with pytest.raises(ConfigError, match="fewer than one sequence"):
        train(tiny_spec(one_concept, seq_len=2**17, batch_tokens=2**17, token_budget=2**17), out)
    assert not out.exists()


def test_training_and_evaluation_work_on_real_text(tmp_path):
    from divlab.data.text import prepare_text
    from divlab.evaluate.checkpoint import evaluate_checkpoint

    corpus = tmp_path / "corpus.txt"
    words = [
        "the",
        "data",
        "model",
        "learns",
        "a",
        "token",
        "from",
        "diverse",
        "text",
        "of",
        "high",
        "quality",
    ]
    rng = np.random.default_rng(0)
    corpus.write_text("\n".join(" ".join(rng.choice(words, size=30)) for _ in range(200)))
    data = prepare_text(corpus, tmp_path / "text", vocab_size=280, eval_docs=10)
    summary = train(tiny_spec(data, token_budget=4096), tmp_path / "run")
    assert summary["final_eval"]["loss"] < summary["speed_of_learning"]["auc"] + 1e-9
    assert "gap" not in summary["final_eval"]  # no oracle for real text
    result = evaluate_checkpoint(tmp_path / "run" / "model", data, limit=8, prefix=8, length=4)
    assert result["loss"]["loss"] == pytest.approx(summary["final_eval"]["loss"], rel=1e-5)
    assert "vs_oracle" not in result["continuation"] and "icl" not in result


def test_init_from_continues_from_the_checkpoint_weights(one_concept, tmp_path):
    seed = train(tiny_spec(one_concept, token_budget=4096), tmp_path / "seed")
    # zero steps of learning (lr ~ 0) from the seed: the loss before the first update is
    # the seed model's, far below a fresh init's golden first loss
    cont = tiny_spec(one_concept, token_budget=512, init_from=str(tmp_path / "seed" / "model"))
    train(cont, tmp_path / "continued")
    first = read_jsonl(tmp_path / "continued" / "train_log.jsonl")[0]["loss"]
    assert first < GOLDEN[0] - 0.3
    assert first == pytest.approx(seed["final_train_loss"], abs=0.25)


def test_init_from_refuses_another_architecture(one_concept, tmp_path):
    train(tiny_spec(one_concept, token_budget=512), tmp_path / "tiny")
    other = tiny_spec(
        one_concept, model={"preset": "mini"}, init_from=str(tmp_path / "tiny" / "model")
    )
    with pytest.raises(ConfigError, match="another architecture"):
        train(other, tmp_path / "mini")
    with pytest.raises(DataError, match="not a model folder"):
        train(tiny_spec(one_concept, init_from=str(tmp_path)), tmp_path / "none")


def test_shuffle_false_visits_sequences_in_document_order(one_concept):
    from divlab.train.data import PackedSequences

    dataset = open_dataset(one_concept)
    ordered = PackedSequences(dataset, "train", 64, seed=3, shuffle=False)
    shuffled = PackedSequences(dataset, "train", 64, seed=3)
    n = len(ordered)
    np.testing.assert_array_equal(ordered.batch(0, n), ordered.sequences)
    np.testing.assert_array_equal(ordered.batch(n, 2), ordered.sequences[:2])  # next epoch
    assert not np.array_equal(shuffled.batch(0, n), shuffled.sequences)


def test_a_run_folder_of_an_earlier_version_is_the_same_run(one_concept, tmp_path):
    """A finished run whose spec.json predates ``micro_batch_size: auto`` and
    ``activation_checkpointing`` (null, absent) is recognised as this run: relaunching
    returns its summary instead of refusing the folder; a real difference is refused."""
    out = tmp_path / "run"
    spec = tiny_spec(one_concept, token_budget=2048)
    summary = train(spec, out)
    stored = json.loads((out / "spec.json").read_text())
    stored["micro_batch_size"] = None
    del stored["activation_checkpointing"]
    (out / "spec.json").write_text(json.dumps(stored))
    assert train(spec, out) == summary
    with pytest.raises(ConfigError, match="holds a run with a different spec"):
        train(tiny_spec(one_concept, token_budget=2048, seed=1), out)
