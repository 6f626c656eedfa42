import pytest
import torch

from hbert import HBertForMaskedLM

from .conftest import tiny_config


@pytest.mark.parametrize("preset", ["bert", "additive", "hbert-v1", "hbert-v2", "hbert-mix"])
@pytest.mark.parametrize("norm", ["post", "pre", "subln"])
def test_loss_falls_on_a_repeated_batch(preset, norm):
    model = HBertForMaskedLM(tiny_config(preset, norm_scheme=norm, hidden_dropout_prob=0.0))
    ids = torch.randint(5, 120, (8, 16))
    labels = torch.full_like(ids, -100)
    labels[:, ::3] = ids[:, ::3]
    inputs = ids.clone()
    inputs[:, ::3] = 4  # a [MASK]-like id
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(inputs, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"{preset}/{norm}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_sequence_classification_and_regression():
    from hbert import HBertForSequenceClassification

    ids = torch.randint(5, 120, (4, 10))
    clf = HBertForSequenceClassification(tiny_config("hbert-v1", num_labels=3))
    out = clf(ids, labels=torch.tensor([0, 2, 1, 1]))
    assert out.logits.shape == (4, 3) and out.loss.ndim == 0
    assert clf.config.problem_type == "single_label_classification"
    reg = HBertForSequenceClassification(tiny_config("hbert-v2", num_labels=1))
    out = reg(ids, labels=torch.tensor([0.5, -1.0, 2.0, 0.0]))
    assert out.logits.shape == (4, 1) and reg.config.problem_type == "regression"
    out.loss.backward()
    assert reg.classifier.weight.grad is not None
