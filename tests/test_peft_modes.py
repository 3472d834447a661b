"""Encoder adaptation modes: what each trains, that adapters start as the identity, bad inputs."""

from __future__ import annotations

import pytest
import torch

from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.models.peft_modes import (
    MODES,
    BottleneckAdapter,
    adapt_encoder,
    add_task_adapters,
    trainable_parameters,
)


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny-random", device="cpu")


def _hidden(model, tiny):
    batch = tiny.tokenizer(["a red dress", "too small"], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


def test_trainable_counts_follow_the_formulas(tiny):
    h, layers, inter, r = 32, 2, 37, 8  # tiny-random: hidden 32, 2 layers, intermediate 37
    total = trainable_parameters(tiny.model).total
    counts = {m: trainable_parameters(adapt_encoder(tiny.model, m, rank=r)) for m in MODES}
    assert counts["frozen"].trainable == 0 and counts["frozen"].total == total
    assert counts["full"].trainable == total
    assert counts["lora"].trainable == layers * 2 * (h * r + r * h)  # A (r x h) and B (h x r) on query, value
    assert counts["adalora"].trainable == layers * 2 * (12 * h + 12 + h * 12)  # init_r = 1.5 r: A, E, B
    assert counts["ia3"].trainable == layers * (h + h + h + inter)  # key, value, both output.dense inputs
    assert counts["adapter"].trainable == layers * ((h * r + r) + (r * h + h))  # down and up with biases
    for mode in ("lora", "ia3", "adapter"):
        assert counts[mode].total == total + counts[mode].trainable
    assert (
        counts["adalora"].total == total + counts["adalora"].trainable + layers * 2
    )  # + a rank counter each


def test_bundled_minilm_counts_match_the_design():
    minilm = load_encoder("bundled-minilm", device="cpu")
    assert trainable_parameters(adapt_encoder(minilm.model, "lora")).trainable == 73_728
    assert trainable_parameters(adapt_encoder(minilm.model, "ia3")).trainable == 16_128


@pytest.mark.parametrize("mode", ["lora", "adapter", "ia3", "frozen"])
def test_adapted_encoder_starts_as_the_pretrained_one(tiny, mode):
    before = _hidden(tiny.model, tiny)
    after = _hidden(adapt_encoder(tiny.model, mode), tiny)
    assert torch.allclose(before, after, atol=1e-6)  # LoRA's B, the adapter's up are zero; IA3 scales are 1


def test_adapt_encoder_leaves_the_original_alone(tiny):
    flags = [p.requires_grad for p in tiny.model.parameters()]
    adapt_encoder(tiny.model, "frozen")
    adapt_encoder(tiny.model, "adapter")
    assert [p.requires_grad for p in tiny.model.parameters()] == flags
    assert not any(isinstance(m, BottleneckAdapter) for m in tiny.model.modules())


def test_adapter_wraps_each_layer_output_once(tiny):
    model = adapt_encoder(tiny.model, "adapter", rank=4)
    adapters = [m for m in model.modules() if isinstance(m, BottleneckAdapter)]
    assert len(adapters) == tiny.model.config.num_hidden_layers
    assert all(a.down.out_features == 4 and not a.inner.weight.requires_grad for a in adapters)


def test_task_adapters_are_separate_and_all_trainable(tiny):
    model = add_task_adapters(tiny.model, ["x", "y", "z"], rank=4)
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert (
        sum(p.numel() for p in lora.values())
        == 3 * trainable_parameters(adapt_encoder(tiny.model, "lora", 4)).trainable
    )
    with torch.no_grad():
        for name, p in lora.items():
            if ".y." in name and "lora_B" in name:
                p.normal_()
    model.set_adapter("x")
    out_a = _hidden(model, tiny)
    model.set_adapter("y")
    assert not torch.allclose(out_a, _hidden(model, tiny))  # only y has a non-zero update


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"mode": "qlora"}, "mode='qlora'"),
        ({"mode": "lora", "rank": 0}, "rank=0"),
        ({"mode": "lora", "total_steps": -1}, "total_steps=-1"),
    ],
)
def test_bad_arguments_name_the_parameter(tiny, kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        adapt_encoder(tiny.model, **kwargs)


def test_task_adapters_need_distinct_names(tiny):
    with pytest.raises(ValueError, match="task_names"):
        add_task_adapters(tiny.model, ["a", "a"])
