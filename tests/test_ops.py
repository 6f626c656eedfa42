import pytest
import torch
import torch.nn.functional as F

from hbert.modeling.ops_hbert import Dropout, cross_entropy, dropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cross_entropy_matches_torch_value_and_gradient(dtype):
    logits = (3 * torch.randn(37, 501)).to(dtype).requires_grad_()
    labels = torch.randint(0, 501, (37,))
    ours = cross_entropy(logits, labels)
    ours.backward(torch.tensor(2.0))
    g_ours = logits.grad.clone()
    logits.grad = None
    ref = F.cross_entropy(logits.double(), labels)
    (2 * ref).backward()
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert abs(ours.item() - ref.item()) < tol
    assert (g_ours.double() - logits.grad.double()).abs().max() < tol


def test_dropout_statistics_scale_and_gradient():
    x = torch.ones(400, 1000, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.003  # 400k draws: 5 standard deviations ~ 0.0024
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept) and torch.allclose(x.grad[kept], y[kept])
    # lanes of the packed random words are independent: every column keeps ~90%
    per_column = kept.float().mean(0)
    assert per_column.min() > 0.8 and per_column.max() < 0.98


def test_dropout_is_identity_in_eval_and_seeded():
    layer = Dropout(0.3)
    x = torch.randn(8, 16)
    assert torch.equal(layer.eval()(x), x)
    layer.train()
    torch.manual_seed(1)
    a = layer(x)
    torch.manual_seed(1)
    assert torch.equal(layer(x), a)
