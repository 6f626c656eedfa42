import re

import pytest

from hbert import PRESETS, HBertConfig
from hbert.modeling.configuration_hbert import LAYER_KINDS

from .conftest import tiny_config


def test_presets_patterns():
    assert tiny_config("bert").layer_pattern == "SSSS"
    assert tiny_config("additive").layer_pattern == "AAAA"
    assert tiny_config("hbert-v1").layer_pattern == "SASA"
    assert tiny_config("hbert-v2").layer_pattern == "AASS"
    assert tiny_config("hbert-mix").layer_pattern == "MMMM"
    assert tiny_config("hbert-v2", num_hidden_layers=6).layer_pattern == "AAASSS"
    assert tiny_config("hbert-v1").norm_scheme == "subln"
    assert tiny_config("bert").norm_scheme == "post"


def test_default_is_bert_base_shape():
    config = HBertConfig.from_preset("hbert-v1")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == (
        768,
        12,
        12,
        3072,
    )
    assert config.vocab_size == 30522


@pytest.mark.parametrize(
    "value, expected",
    [
        ("SASA", ["softmax", "additive", "softmax", "additive"]),
        ("sama", ["softmax", "additive", "mixture", "additive"]),
        ("softmax,additive,mixture,softmax", ["softmax", "additive", "mixture", "softmax"]),
        (["S", "additive", "M", "A"], ["softmax", "additive", "mixture", "additive"]),
    ],
)
def test_layer_types_forms(value, expected):
    assert tiny_config(layer_types=value).layer_types == expected


def test_layer_types_survive_json_round_trip(tmp_path):
    config = tiny_config(layer_types="SAMA", norm_scheme="pre")
    config.save_pretrained(tmp_path)
    again = HBertConfig.from_pretrained(tmp_path)
    assert again.layer_types == config.layer_types and again.norm_scheme == "pre"


@pytest.mark.parametrize(
    "overrides, field, accepted",
    [
        ({"layer_types": "SAS"}, "layer_types", "num_hidden_layers"),
        ({"layer_types": "SAXS"}, "layer_types", "softmax, additive, mixture"),
        ({"layer_types": ["softmax", "linear", "softmax", "softmax"]}, "layer_types", "softmax, additive, mixture"),
        ({"hidden_size": 30}, "hidden_size", "num_attention_heads"),
        ({"norm_scheme": "rms"}, "norm_scheme", "post, pre, subln"),
        ({"position_embedding_type": "rotary"}, "position_embedding_type", "learned, sinusoidal"),
        ({"type_vocab_size": -1}, "type_vocab_size", ">= 0"),
    ],
)
def test_bad_config_names_field_and_accepted_values(overrides, field, accepted):
    with pytest.raises(ValueError) as err:
        tiny_config(**overrides)
    assert field in str(err.value) and accepted in str(err.value)


def test_unknown_preset_and_unknown_field():
    with pytest.raises(ValueError, match=r"unknown preset 'hbert-v3'.*hbert-v1"):
        HBertConfig.from_preset("hbert-v3")
    with pytest.raises(ValueError, match=r"hiden_size"):
        HBertConfig.from_preset("bert", hiden_size=12)


def test_every_field_is_documented():
    doc = HBertConfig.__doc__
    for name in HBertConfig.field_names():
        if name in ("num_labels", "problem_type", "id2label", "label2id"):
            continue  # documented by transformers' PretrainedConfig
        assert re.search(rf"^\s+{name} \(", doc, re.M), f"{name} is not documented in HBertConfig's docstring"
    for preset in PRESETS:
        assert f"`{preset}`" in doc
    for kind in LAYER_KINDS:
        assert f'"{kind}"' in doc
