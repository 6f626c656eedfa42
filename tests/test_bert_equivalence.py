"""The `bert` preset is numerically Hugging Face BERT."""

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from hbert import HBertForMaskedLM
from hbert.modeling.convert import from_hf_bert, to_hf_bert

from .conftest import padded_batch, tiny_config


def _bert():
    config = BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64
    )
    return BertForMaskedLM(config).eval()


def _labels(ids, mask):
    labels = torch.full_like(ids, -100)
    pick = (torch.rand(ids.shape) < 0.3) & mask.bool()
    labels[pick] = ids[pick]
    return labels


@pytest.mark.parametrize("padded", [False, True])
def test_same_logits_and_loss_as_hf_bert(padded):
    bert = _bert()
    ours = from_hf_bert(bert).eval()
    ids, mask = padded_batch(lengths=(20, 13, 6) if padded else (20, 20, 20))
    labels = _labels(ids, mask)
    with torch.no_grad():
        ref = bert(ids, attention_mask=mask, labels=labels)
        full = ours(ids, attention_mask=mask, labels=labels)
        sparse = ours(ids, attention_mask=mask, labels=labels, sparse_logits=True)
    real = mask.bool()
    assert (full.logits[real] - ref.logits[real]).abs().max() <= 1e-5
    assert torch.allclose(full.loss, ref.loss, atol=1e-5)
    assert torch.allclose(sparse.loss, ref.loss, atol=1e-5)
    # sparse rows are exactly the labelled positions of the full logits
    rows = labels.reshape(-1) != -100
    assert sparse.logits.shape == (int(rows.sum()), 120)
    assert torch.allclose(sparse.logits, full.logits.reshape(-1, 120)[rows], atol=1e-6)
    assert torch.equal(sparse.masked_labels, labels.reshape(-1)[rows])


def test_conversion_from_checkpoint_folder_and_back(tmp_path):
    bert = _bert()
    bert.save_pretrained(tmp_path / "bert")
    ours = from_hf_bert(str(tmp_path / "bert")).eval()
    assert ours.config.layer_pattern == "SSS" and ours.config.norm_scheme == "post"
    assert ours.head.decoder.weight is ours.hbert.embeddings.word_embeddings.weight
    back = to_hf_bert(ours).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        assert torch.equal(back(ids, attention_mask=mask).logits, bert(ids, attention_mask=mask).logits)


def test_back_conversion_refuses_non_bert_presets():
    with pytest.raises(ValueError, match=r"layer_types=SASA.*norm_scheme='subln'"):
        to_hf_bert(HBertForMaskedLM(tiny_config("hbert-v1")))


@pytest.mark.parametrize("tied", [True, False])
def test_tied_and_untied_bert_convert_to_equal_logits(tied):
    """An untied BERT's decoder has its own weight and bias; the bias kept as ``cls.predictions.bias`` is then not
    the one the decoder adds, so both are set to different values here and the decoder's must win."""
    config = BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        tie_word_embeddings=tied,
    )
    bert = BertForMaskedLM(config).eval()
    with torch.no_grad():
        bert.cls.predictions.decoder.bias.normal_()
        if not tied:
            bert.cls.predictions.decoder.weight.normal_(std=0.05)
            bert.cls.predictions.bias.normal_()  # a different, unused bias
    if not tied:
        assert bert.cls.predictions.decoder.weight is not bert.bert.embeddings.word_embeddings.weight
        assert not torch.equal(bert.cls.predictions.bias, bert.cls.predictions.decoder.bias)
    ours = from_hf_bert(bert).eval()
    assert (ours.head.decoder.weight is ours.hbert.embeddings.word_embeddings.weight) == tied
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = bert(ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
        back = to_hf_bert(ours).eval()(ids, attention_mask=mask).logits
    real = mask.bool()
    assert (got[real] - ref[real]).abs().max() <= 1e-5
    assert (back[real] - ref[real]).abs().max() <= 1e-5
