"""Instruction tuning's response-only loss (``loss_on: response``): the prompt tokens of
each document (its ``prompt_length``) are not targets; the response and the ``<eos>`` after
it are."""

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file as load_state

from divlab.data.store import open_dataset, token_lists, write_dataset
from divlab.errors import ConfigError
from divlab.train import train
from divlab.train.data import IGNORE, PackedSequences
from divlab.train.models import build_config, build_model
from tests.train.test_loop import tiny_spec

PROMPT, RESPONSE = 12, 4


@pytest.fixture(scope="module")
def instructions(one_concept, tmp_path_factory):
    """The tiny concept's documents cut into 16-token examples: a 12-token prompt and a
    4-token response each."""
    like = open_dataset(one_concept)
    tokens = np.concatenate(like.documents("train"))
    n = len(tokens) // (PROMPT + RESPONSE)
    examples = tokens[: n * (PROMPT + RESPONSE)].reshape(n, PROMPT + RESPONSE)
    table = pa.table(
        {
            "doc_id": pa.array(np.arange(n), pa.int64()),
            "tokens": token_lists(examples),
            "prompt_length": pa.array(np.full(n, PROMPT), pa.int64()),
        }
    )
    out = tmp_path_factory.mktemp("sft") / "instructions"
    write_dataset(out, like, {"train": table, "eval": table.slice(0, 8)})
    return out


def test_whole_examples_are_packed_and_only_responses_are_targets(instructions):
    """Each 64-token sequence holds 3 whole 17-token examples (16 + <eos>) and 13 padding
    tokens; the prompts and the padding are not targets (loss on responses), or only the
    padding is not (loss on all tokens)."""
    dataset = open_dataset(instructions)
    examples = dataset.documents("train")
    data = PackedSequences(dataset, "train", 64, seed=0, loss_on="response")
    per = PROMPT + RESPONSE + 1
    assert data.sequences.shape == (-(-len(examples) // 3), 64)
    for i, (tokens, labels) in enumerate(zip(data.sequences, data.labels, strict=True)):
        held = examples[3 * i : 3 * i + 3]
        for j, example in enumerate(held):
            start = j * per
            np.testing.assert_array_equal(tokens[start : start + per - 1], example)
            assert tokens[start + per - 1] == dataset.eos_token_id
            assert (labels[start : start + PROMPT] == IGNORE).all()
            np.testing.assert_array_equal(
                labels[start + PROMPT : start + per], tokens[start + PROMPT : start + per]
            )
        assert (labels[len(held) * per :] == IGNORE).all()
    everything = PackedSequences(dataset, "train", 64, seed=0, loss_on="all")
    np.testing.assert_array_equal(everything.sequences, data.sequences)
    padding = np.arange(64) >= 3 * per
    assert (everything.labels[:, padding] == IGNORE).all()
    np.testing.assert_array_equal(everything.labels[0, ~padding], data.sequences[0, ~padding])


def test_masked_loss_and_gradients_are_those_of_the_response_tokens(instructions):
    """The loss and its gradients equal a hand-computed cross-entropy over the response
    targets only; the unmasked loss differs."""
    torch.manual_seed(0)
    dataset = open_dataset(instructions)
    data = PackedSequences(dataset, "train", 64, seed=0, loss_on="response")
    special = dataset.summary["tokenizer"]
    config = build_config(tiny_spec(instructions).model, dataset.vocab_size, 64, special)
    model = build_model(config, seed=0)
    parameters = list(model.parameters())
    inputs = torch.from_numpy(data.batch(0, 4))
    labels = torch.from_numpy(data.label_batch(0, 4))

    out = model(input_ids=inputs, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    targets = labels[:, 1:].reshape(-1)
    keep = targets != IGNORE
    assert keep.sum() == 4 * 3 * (RESPONSE + 1)  # responses and their <eos>
    by_hand = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert out.loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    grads = torch.autograd.grad(out.loss, parameters, retain_graph=True)
    for a, b in zip(grads, torch.autograd.grad(by_hand, parameters), strict=True):
        torch.testing.assert_close(a, b)
    assert model(input_ids=inputs, labels=inputs).loss.item() != pytest.approx(out.loss.item())


def test_micro_batches_give_the_one_pass_step(instructions, tmp_path):
    """With masked labels the micro-batches weigh by their targets: 4 micro-batches of 2
    train to the parameters of one pass of 8 (up to float rounding)."""
    states = []
    for micro in (8, 2):
        spec = tiny_spec(
            instructions, token_budget=1024, loss_on="response", micro_batch_size=micro
        )
        train(spec, tmp_path / f"m{micro}")
        states.append(load_state(tmp_path / f"m{micro}" / "model" / "model.safetensors"))
    for name, value in states[0].items():
        torch.testing.assert_close(states[1][name], value, rtol=1e-4, atol=1e-5)


def test_a_response_only_run_trains_and_counts_its_targets(instructions, tmp_path):
    spec = tiny_spec(instructions, token_budget=2048, loss_on="response", micro_batch_size=2)
    summary = train(spec, tmp_path / "run")
    data = PackedSequences(open_dataset(instructions), "train", 64, 0, loss_on="response")
    targets = sum(
        int((data.label_batch(s * 8, 8)[:, 1:] != IGNORE).sum()) for s in range(spec.steps)
    )
    assert targets < spec.steps * 8 * 63  # fewer than all tokens
    assert np.isfinite(summary["final_train_loss"])
    assert summary["prequential_bits_per_token"] == pytest.approx(
        summary["prequential_code_length_nats"] / targets / np.log(2)
    )


def test_response_loss_needs_prompt_lengths_and_room(one_concept, instructions):
    with pytest.raises(ConfigError, match="prompt_length column"):
        PackedSequences(open_dataset(one_concept), "train", 64, 0, loss_on="response")
    with pytest.raises(ConfigError, match="raise seq_len"):
        PackedSequences(open_dataset(instructions), "train", 16, 0, loss_on="response")
