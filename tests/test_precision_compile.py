"""Mixed precision and torch.compile paths that GPU users take, exercised on CPU."""

import pytest
import torch

from hbert import HBertForMaskedLM

from .conftest import padded_batch, tiny_config


@pytest.mark.parametrize("preset", ["bert", "additive", "hbert-v1", "hbert-mix"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_forward_backward_close_to_float32(preset, dtype):
    model = HBertForMaskedLM(tiny_config(preset, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    ids, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1:4] = ids[:, 1:4]
    ref = model(ids, attention_mask=mask, labels=labels).loss
    with torch.autocast("cpu", dtype=dtype):
        out = model(ids, attention_mask=mask, labels=labels)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert abs(out.loss.item() - ref.item()) < 0.05
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.slow
def test_torch_compile_trains_and_matches_eager():
    torch._dynamo.reset()
    model = HBertForMaskedLM(tiny_config("hbert-v1", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    ids, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1:4] = ids[:, 1:4]
    eager = model(ids, attention_mask=mask, labels=labels).loss
    compiled = torch.compile(model)
    loss = compiled(ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(loss, eager, atol=1e-4)
    loss.backward()
    assert model.hbert.encoder.layers[1].attention.inner.query_score.grad is not None
