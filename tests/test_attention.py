import math

import pytest
import torch

from hbert import HBertForMaskedLM, HBertModel
from hbert.modeling.modeling_hbert import AdditiveAttention, MixtureAttention, SoftmaxAttention

from .conftest import padded_batch, tiny_config


def fastformer_reference(x, mask, qkv_w, qkv_b, w_q, w_k, t_w, t_b, num_heads):
    """The additive-attention equations, written out in float64, one sequence and one head at a time."""
    x, qkv_w, qkv_b, w_q, w_k, t_w, t_b = (a.detach().double() for a in (x, qkv_w, qkv_b, w_q, w_k, t_w, t_b))
    B, T, H = x.shape
    D = H // num_heads
    out = torch.zeros(B, T, H, dtype=torch.float64)
    for b in range(B):
        real = [t for t in range(T) if mask[b, t]]
        qkv = x[b] @ qkv_w.T + qkv_b
        q_all, k_all, v_all = qkv[:, :H], qkv[:, H : 2 * H], qkv[:, 2 * H :]
        u = torch.zeros(T, H, dtype=torch.float64)
        for n in range(num_heads):
            cols = slice(n * D, (n + 1) * D)
            q, k, v = q_all[:, cols], k_all[:, cols], v_all[:, cols]
            a = torch.tensor([float(w_q[n] @ q[t]) / math.sqrt(D) for t in real], dtype=torch.float64)
            alpha = torch.exp(a - a.max()) / torch.exp(a - a.max()).sum()
            g_q = sum(alpha[i] * q[t] for i, t in enumerate(real))
            p = g_q * k
            s = torch.tensor([float(w_k[n] @ p[t]) / math.sqrt(D) for t in real], dtype=torch.float64)
            beta = torch.exp(s - s.max()) / torch.exp(s - s.max()).sum()
            g_k = sum(beta[i] * p[t] for i, t in enumerate(real))
            u[:, cols] = g_k * v
        out[b] = u @ t_w.T + t_b + q_all
    return out


def test_additive_attention_equals_float64_reference():
    config = tiny_config("additive")
    attn = AdditiveAttention(config).eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 11, config.hidden_size)
    _, mask = padded_batch(lengths=(11, 7, 2))
    got, _ = attn(x, mask.bool())
    ref = fastformer_reference(
        x,
        mask,
        attn.qkv.weight,
        attn.qkv.bias,
        attn.query_score,
        attn.key_score,
        attn.transform.weight,
        attn.transform.bias,
        config.num_attention_heads,
    )
    real = mask.bool()
    assert (got.double()[real] - ref[real]).abs().max() < 1e-5


@pytest.mark.parametrize("kind", [SoftmaxAttention, AdditiveAttention, MixtureAttention])
def test_each_kind_ignores_padding(kind):
    config = tiny_config()
    attn = kind(config).eval()
    x = torch.randn(2, 9, config.hidden_size)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    out, _ = attn(x, mask)
    x2 = x.clone()
    x2[1, 5:] = 100 * torch.randn(4, config.hidden_size)  # change what padding holds
    assert torch.allclose(attn(x2, mask)[0][1, :5], out[1, :5], atol=1e-5)
    # and a shorter, unpadded sequence gives the same outputs as its padded copy
    assert torch.allclose(attn(x[1:, :5], None)[0], out[1:, :5], atol=1e-5)


@pytest.mark.parametrize("preset", ["bert", "additive", "hbert-v1", "hbert-v2", "hbert-mix"])
@pytest.mark.parametrize("norm", ["post", "pre", "subln"])
def test_outputs_at_real_positions_do_not_depend_on_padding(preset, norm):
    model = HBertModel(tiny_config(preset, norm_scheme=norm)).eval()
    ids, mask = padded_batch(lengths=(12, 7))
    with torch.no_grad():
        base = model(ids, attention_mask=mask).last_hidden_state
        alone = model(ids[1:, :7]).last_hidden_state  # the short sequence with no padding at all
        longer_ids = torch.cat([ids, torch.randint(5, 120, (2, 6))], dim=1)  # more padding, random content
        longer_mask = torch.cat([mask, torch.zeros(2, 6, dtype=mask.dtype)], dim=1)
        longer = model(longer_ids, attention_mask=longer_mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(longer[:, :12][real], base[real], atol=1e-5)
    assert torch.allclose(alone[0], base[1, :7], atol=1e-5)


def test_mixture_gate_interpolates_between_kinds():
    config = tiny_config("hbert-mix")
    mix = MixtureAttention(config).eval()
    x = torch.randn(2, 6, config.hidden_size)
    with torch.no_grad():
        mix.gate.weight.zero_()
        mix.gate.bias.fill_(30.0)  # gate ~ 1: softmax only
        assert torch.allclose(mix(x, None)[0], mix.softmax(x, None)[0], atol=1e-5)
        mix.gate.bias.fill_(-30.0)  # gate ~ 0: additive only
        assert torch.allclose(mix(x, None)[0], mix.additive(x, None)[0], atol=1e-5)


def test_sinusoidal_positions_and_no_token_types():
    config = tiny_config("hbert-v1", position_embedding_type="sinusoidal", type_vocab_size=0)
    model = HBertForMaskedLM(config).eval()
    assert model.hbert.embeddings.position_embeddings is None
    assert model.hbert.embeddings.token_type_embeddings is None
    table = model.hbert.embeddings.sinusoid
    assert torch.allclose(table[3, 0], torch.tensor(math.sin(3.0)))
    assert torch.allclose(table[3, 1], torch.tensor(math.cos(3.0)))
    ids, _ = padded_batch(lengths=(10, 10))
    assert model(ids).logits.shape == (2, 10, 120)


def test_too_long_input_is_a_clear_error():
    model = HBertModel(tiny_config())
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(torch.ones(1, 65, dtype=torch.long))


@pytest.mark.parametrize("preset", ["bert", "hbert-v1"])
def test_tracing_from_an_unpadded_example_still_honours_padding(preset):
    """The fast path (no mask work when nothing is padded) must not be frozen into a trace."""
    model = HBertModel(tiny_config(preset)).eval()
    ids, mask = padded_batch(lengths=(12, 7))
    with torch.no_grad():
        traced = torch.jit.trace(model, (ids, torch.ones_like(mask)), strict=False)
        eager = model(ids, attention_mask=mask).last_hidden_state
        got = traced(ids, mask)["last_hidden_state"]
    real = mask.bool()
    assert (got[real] - eager[real]).abs().max() < 1e-5


def test_legacy_onnx_export_keeps_the_attention_mask_input(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = HBertModel(tiny_config("hbert-v1")).eval()
    ids, mask = padded_batch(lengths=(12, 12))
    path = tmp_path / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"], dynamo=False)
    inputs = [i.name for i in onnx.load(str(path)).graph.input]
    assert "attention_mask" in inputs
