"""One registry per extension point: attention kinds and tasks. The examples of docs/extending.md are run
here as written, so the documentation is code that works."""

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from hbert import HBertConfig, HBertForMaskedLM
from hbert.config import ConfigError, load_config, validate_config
from hbert.data import tasks as task_table
from hbert.modeling import attention_hbert
from hbert.modeling.attention_hbert import ATTENTION_KINDS, AttentionKind, attention_kind, register_attention_kind
from hbert.modeling.info import flops_per_token, parameter_breakdown
from hbert.modeling.init_schemes import subln_scale
from hbert.settings import setting
from hbert.training.init import freeze_groups, frozen_parameters

from .conftest import padded_batch, tiny_config

EXTENDING = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def readme_block(label: str) -> str:
    """The python block that follows ``<!-- extending: LABEL ... -->`` in docs/extending.md."""
    match = re.search(rf"<!-- extending: {label} [^>]*-->\s*```python\n(.*?)```", EXTENDING.read_text(), re.S)
    assert match, f"docs/extending.md has no '{label}' example"
    return match.group(1)


@pytest.fixture
def meanpool():
    """The docs' toy attention kind, registered for one test and removed after it."""
    saved = dict(ATTENTION_KINDS)
    namespace: dict = {}
    exec(compile(readme_block("attention kind"), "docs/extending.md", "exec"), namespace)
    yield namespace
    ATTENTION_KINDS.clear()
    ATTENTION_KINDS.update(saved)


def test_unknown_kind_names_every_option():
    with pytest.raises(ValueError) as err:
        attention_kind("linear")
    for kind in ATTENTION_KINDS.values():
        assert kind.name in str(err.value) and kind.letter in str(err.value)
    with pytest.raises(ValueError, match=r"layer_types: unknown attention kind 'X'.*softmax, additive, mixture"):
        tiny_config(layer_types="SAXS")


def test_builtin_kinds_are_the_registry():
    assert {k: v.letter for k, v in ATTENTION_KINDS.items()} == {"softmax": "S", "additive": "A", "mixture": "M"}
    assert tiny_config("hbert-mix").layer_pattern == "MMMM"
    assert set(ATTENTION_KINDS) <= set(freeze_groups())


def test_registry_refuses_an_incomplete_or_clashing_kind():
    toy = attention_hbert.SoftmaxAttention
    with pytest.raises(ValueError, match="macs must be a function"):
        register_attention_kind(AttentionKind("nomacs", "Z", toy, None, lambda m: []))
    with pytest.raises(ValueError, match=r"letter .S.*taken: S, A, M"):
        register_attention_kind(AttentionKind("other", "S", toy, lambda H, N, T: (0, 0), lambda m: []))
    with pytest.raises(ValueError, match="name 'softmax'"):
        register_attention_kind(AttentionKind("softmax", "Z", toy, lambda H, N, T: (0, 0), lambda m: []))
    assert set(ATTENTION_KINDS) == {"softmax", "additive", "mixture"}


def test_toy_kind_is_picked_up_everywhere(meanpool):
    """The docs' kind, registered in one place, reaches config validation, the model, info, Sub-LN init and
    freezing with no other edit."""
    config = meanpool["config"]
    assert config.layer_types == ["softmax", "meanpool", "softmax", "meanpool"] and config.layer_pattern == "SPSP"
    assert HBertConfig(**config.to_dict()).layer_types == config.layer_types  # reloads from its saved form
    model = meanpool["model"].eval()
    assert isinstance(model.hbert.encoder.layers[1].attention.inner, meanpool["MeanPoolAttention"])
    assert [p.kind for p in parameter_breakdown(config)][2] == "meanpool/subln"

    # its output: value + masked mean of the values, padding ignored
    layer = model.hbert.encoder.layers[1].attention.inner
    x = torch.randn(3, 20, config.hidden_size)
    _, mask = padded_batch()
    got, weights = layer(x, mask.bool())
    v = layer.value(x)
    for b, n in enumerate(mask.sum(1).tolist()):
        assert torch.allclose(got[b], v[b] + v[b, :n].mean(0), atol=1e-5)
    assert weights is None
    ids, mask = padded_batch()
    assert model(ids, attention_mask=mask).logits.shape == (*ids.shape, config.vocab_size)

    # info: its own formula, constant in the sequence length
    H, F = config.hidden_size, config.intermediate_size
    only = HBertConfig(**{**config.to_dict(), "attention_kinds": ["meanpool"] * 4})
    for seq_len in (128, 4096):
        flops = flops_per_token(only, seq_len)
        assert flops["attention_mixing"] == 2.0 * 4 * 2 * H
        assert flops["encoder_linear"] == 2.0 * 4 * (H * H + H * H + 2 * H * F)  # value, output, feed-forward

    # Sub-LN init scales its value projection (and leaves the rest of the mixer alone)
    before = layer.value.weight.clone()
    bias = layer.value.bias.clone()
    gamma = subln_scale(model)
    assert gamma == pytest.approx(math.sqrt(math.log(8)))
    assert torch.allclose(layer.value.weight, before * gamma) and torch.equal(layer.value.bias, bias)

    # freezing by kind name
    frozen = {id(p) for p in frozen_parameters(model, ["meanpool"])}
    assert frozen == {id(p) for i in (1, 3) for p in model.hbert.encoder.layers[i].parameters()}
    with pytest.raises(ValueError, match=r"embeddings, head, softmax, additive, mixture, meanpool, layers\.N"):
        frozen_parameters(model, ["nothing"])


def test_info_never_counts_a_kind_with_another_formula(meanpool):
    config = meanpool["config"]
    del ATTENTION_KINDS["meanpool"]
    with pytest.raises(ValueError, match="unknown attention kind 'meanpool'; accepted: softmax, additive, mixture"):
        flops_per_token(config)


def test_builtin_flops_unchanged():
    """The registry's formulas give the counts ``hbert info`` gave before them (per layer, forward MACs)."""
    config = tiny_config()
    H, N, F, T = config.hidden_size, config.num_attention_heads, config.intermediate_size, 128
    expected = {
        "softmax": (4 * H * H, 2 * T * H),
        "additive": (5 * H * H, 6 * H),
        "mixture": (4 * H * H + 5 * H * H - H * H + H * N, 2 * T * H + 6 * H + 2 * H),
    }
    for kind, (proj, mix) in expected.items():
        flops = flops_per_token(tiny_config(layer_types=[kind] * 4), T)
        assert flops["encoder_linear"] == 2.0 * 4 * (proj + 2 * H * F)
        assert flops["attention_mixing"] == 2.0 * 4 * mix


def test_task_example_joins_the_offline_suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"text": f"review number {i} says {'great' if i % 2 else 'poor'} things", "stars": 5 if i % 2 else 1}
            for i in range(40)]  # fmt: skip
    (tmp_path / "my-reviews.jsonl").write_text("".join(f'{{"text": "{r["text"]}", "stars": {r["stars"]}}}\n'
                                                       for r in rows))  # fmt: skip
    before = dict(task_table.OFFLINE_TASKS)
    try:
        exec(compile(readme_block("task"), "docs/extending.md", "exec"), {})
        assert task_table.suites()["offline"] == (*before, "my-reviews")
        data = task_table.load_task("my-reviews")
        assert sum(len(split) for split in data.values()) == 40 and set(data) == {"train", "validation", "test"}
        with pytest.raises(task_table.TaskError, match="exists already"):
            exec(compile(readme_block("task"), "docs/extending.md", "exec"), {})
    finally:
        task_table.OFFLINE_TASKS.pop("my-reviews", None)
        task_table._OFFLINE_ROWS.pop("my-reviews", None)
    assert task_table.suites()["offline"] == (
        "rt-polarity",
        "vader-movie",
        "vader-tweets",
        "vitaminc",
        "vader-amazon",
        "vader-nyt",
    )


def test_an_attention_kind_declares_its_own_settings():
    """A kind's own settings (its ``settings`` dataclass) become model fields: typed, range-checked and read by the
    layer, without an edit anywhere else."""

    @dataclass
    class EchoSettings:
        echo_scale: float = setting(1.0, low=0.0, high=10.0)

    class Echo(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.scale = config.echo_scale
            self.value = nn.Linear(config.hidden_size, config.hidden_size)

        def forward(self, x, key_mask, output_attentions=False):
            return self.value(x) * self.scale, None

    kind = AttentionKind("echo", "E", Echo, lambda H, N, T: (H * H, 0), lambda m: [m.value.weight], EchoSettings)
    register_attention_kind(kind)
    try:
        shape = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
                 "model.intermediate_size=64", "model.layer_types=SE"]  # fmt: skip
        config = load_config(overrides=[*shape, "model.echo_scale=2.5"])
        validate_config(config)
        model = HBertForMaskedLM(HBertConfig.from_preset("bert", **config.model.fields))
        assert model.hbert.encoder.layers[1].attention.inner.scale == 2.5
        assert HBertConfig.from_preset("bert", layer_types="SE", num_hidden_layers=2).echo_scale == 1.0  # default
        assert not hasattr(HBertConfig.from_preset("bert", num_hidden_layers=2), "echo_scale")  # not in use
        with pytest.raises(ConfigError, match=r"model\.echo_scale=20\.0; accepted: a number >= 0 and <= 10$"):
            validate_config(load_config(overrides=[*shape, "model.echo_scale=20"]))
        with pytest.raises(ConfigError, match=r"model\.echo_scale: expected a number, got 'loud'"):
            validate_config(load_config(overrides=[*shape, "model.echo_scale=loud"]))
        with pytest.raises(ConfigError, match=r"did you mean 'model\.echo_scale'"):
            load_config(overrides=["model.echo_scal=2"])
        with pytest.raises(ValueError, match="echo_scale exist already"):
            register_attention_kind(AttentionKind("echo2", "F", Echo, kind.macs, kind.subln_scaled, EchoSettings))
    finally:
        ATTENTION_KINDS.pop("echo")
