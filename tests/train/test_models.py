"""Model presets, parameter and FLOP counts against hand counts."""

import pytest

from divlab.errors import ConfigError
from divlab.train import TrainSpec
from divlab.train.models import (
    PRESETS,
    ModelSpec,
    build_config,
    build_model,
    count_parameters,
    training_flops,
)

SPECIAL = {"bos_token_id": 51, "eos_token_id": 52, "pad_token_id": 50}


def test_llama_counts_match_a_hand_count():
    d, layers, ff, vocab = 32, 2, 96, 54
    model = build_model(build_config(ModelSpec(preset="tiny"), vocab, 64, SPECIAL), seed=0)
    per_layer = 4 * d * d + 3 * d * ff + 2 * d  # q k v o, gate up down, two RMSNorms
    body = layers * per_layer + d  # + final norm
    embedding = 2 * vocab * d  # input embedding + untied head
    counts = count_parameters(model)
    assert counts == {"total": body + embedding, "embedding": embedding, "non_embedding": body}
    flops = training_flops(counts, 1000)
    assert flops["flops_non_embedding"] == 6 * body * 1000
    assert flops["flops_total"] == 6 * (body + embedding) * 1000


def test_gpt2_counts_match_a_hand_count_with_tied_head():
    d, layers, ff, vocab, context = 32, 2, 96, 54, 64
    spec = ModelSpec(preset="tiny", architecture="gpt2", tie_embeddings=True)
    model = build_model(build_config(spec, vocab, context, SPECIAL), seed=0)
    per_layer = (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (2 * d) + (d * ff + ff) + (ff * d + d)
    body = layers * per_layer + 2 * d
    embedding = vocab * d + context * d  # tied head counted once, plus positions
    assert count_parameters(model) == {
        "total": body + embedding,
        "embedding": embedding,
        "non_embedding": body,
    }


def test_presets_span_tiny_to_125m():
    tiny = count_parameters(build_model(build_config(ModelSpec(preset="tiny"), 54, 64, {}), 0))
    assert tiny["total"] < 1_000_000
    hidden, layers, _, intermediate = PRESETS["125m"]
    non_embedding = layers * (4 * hidden**2 + 3 * hidden * intermediate + 2 * hidden) + hidden
    assert 80e6 < non_embedding < 130e6


def test_same_seed_same_weights():
    config = build_config(ModelSpec(preset="tiny"), 54, 64, SPECIAL)
    a, b, c = build_model(config, 3), build_model(config, 3), build_model(config, 4)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert (pa == pb).all()
    assert any((pa != pc).any() for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


def test_bad_model_specs():
    with pytest.raises(ConfigError, match="hidden_size 30 must be divisible by num_heads 4"):
        build_config(ModelSpec(preset="tiny", hidden_size=30, num_heads=4), 54, 64, SPECIAL)


@pytest.mark.parametrize("preset", ["huge", "125M", "minii"])
def test_an_unknown_preset_is_refused_when_the_spec_is_parsed(preset):
    with pytest.raises(ConfigError, match=f"unknown model preset '{preset}'; choose one of tiny"):
        TrainSpec.from_dict({"data": "d", "token_budget": 4096, "model": {"preset": preset}})
