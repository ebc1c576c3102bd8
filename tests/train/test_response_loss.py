"""Instruction tuning's response-only loss (``loss_on: response``): the prompt tokens of
each document (its ``prompt_length``) are not targets; the response and the ``<eos>`` after
it are."""

import numpy as np
import pyarrow as pa
import pytest
import torch

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


def test_labels_mask_exactly_the_prompts(instructions):
    dataset = open_dataset(instructions)
    data = PackedSequences(dataset, "train", 64, seed=0, loss_on="response")
    stream_period = PROMPT + RESPONSE + 1  # each document and its <eos>
    position = np.arange(data.sequences.size) % stream_period
    labels = data.labels.ravel()
    prompt = position < PROMPT
    assert (labels[prompt] == IGNORE).all()
    assert (labels[~prompt] == data.sequences.ravel()[~prompt]).all()
    assert PackedSequences(dataset, "train", 64, seed=0).labels is None  # loss_on: all
    assert (data.label_batch(3, 5) != IGNORE).sum() > 0
    np.testing.assert_array_equal(
        data.batch(3, 5), PackedSequences(dataset, "train", 64, seed=0).batch(3, 5)
    )


def test_masked_loss_is_the_mean_over_response_tokens_and_prompt_labels_do_not_matter(
    instructions,
):
    """The loss equals a hand-computed cross-entropy over the response targets; changing
    what the masked positions would have predicted changes neither loss nor gradients."""
    torch.manual_seed(0)
    dataset = open_dataset(instructions)
    data = PackedSequences(dataset, "train", 64, seed=0, loss_on="response")
    special = dataset.summary["tokenizer"]
    config = build_config(tiny_spec(instructions).model, dataset.vocab_size, 64, special)
    model = build_model(config, seed=0)
    inputs = torch.from_numpy(data.batch(0, 4))
    labels = torch.from_numpy(data.label_batch(0, 4))

    out = model(input_ids=inputs, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1]).double()
    targets = labels[:, 1:].reshape(-1)
    keep = targets != IGNORE
    by_hand = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert out.loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    grads = torch.autograd.grad(out.loss, list(model.parameters()))

    # labels that differ from these at every prompt position (other tokens), then masked
    prompt = labels == IGNORE
    perturbed = torch.where(prompt, (inputs + 1) % 20, labels)
    again = model(input_ids=inputs, labels=torch.where(prompt, IGNORE, perturbed))
    assert again.loss.item() == out.loss.item()
    for a, b in zip(grads, torch.autograd.grad(again.loss, list(model.parameters())), strict=True):
        assert torch.equal(a, b)
    unmasked = model(input_ids=inputs, labels=inputs).loss
    assert unmasked.item() != pytest.approx(out.loss.item())


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
        PackedSequences(open_dataset(instructions), "train", 12, 0, loss_on="response")
