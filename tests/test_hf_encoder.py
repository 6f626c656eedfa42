"""What a BERT user relies on, through the real transformers / peft / sentence-transformers code paths: gradient
checkpointing, attention maps, inputs_embeds, the token / QA / multiple-choice heads (and the token-classification pipeline), run_mlm
style metrics under the Trainer, LoRA on the fused q/k/v projection."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import (
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForTokenClassification,
    BertTokenizer,
    Trainer,
    TrainingArguments,
    default_data_collator,
    pipeline,
)

from hbert import (
    HBertForMaskedLM,
    HBertForMultipleChoice,
    HBertForQuestionAnswering,
    HBertForSequenceClassification,
    HBertForTokenClassification,
    HBertModel,
)

from .conftest import padded_batch, tiny_config

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "ran", "who", "where", "paris", "is", "in", "france", "?"]


@pytest.fixture
def tokenizer(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizer.from_pretrained(tmp_path, model_max_length=64)


def _quiet(preset="hbert-v1", **overrides):
    return tiny_config(preset, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)


# ------------------------------------------------------------------------------------------ gradient checkpointing


def test_gradient_checkpointing_recomputes_layers_and_keeps_gradients():
    ids, mask = padded_batch()
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, torch.full_like(ids, -100))
    grads, calls = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = HBertForMaskedLM(_quiet("hbert-mix")).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        assert model.is_activation_checkpointing == checkpointing
        count = []
        model.hbert.encoder.layers[1].ffn.register_forward_pre_hook(lambda *_, seen=count: seen.append(1))
        model(ids, attention_mask=mask, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        calls.append(len(count))
    assert calls == [1, 2]  # the checkpointed layer runs again in backward
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


# ------------------------------------------------------------------------------------------ attention maps, inputs


def test_output_attentions_per_layer_kind():
    model = HBertModel(_quiet("hbert-mix", layer_types="SAMA")).eval()
    ids, mask = padded_batch()
    B, T = ids.shape
    with torch.no_grad():
        plain = model(ids, attention_mask=mask)
        out = model(ids, attention_mask=mask, output_attentions=True)
    assert plain.attentions is None
    assert torch.allclose(out.last_hidden_state, plain.last_hidden_state, atol=1e-5)  # explicit path = SDPA
    softmax, additive, mixture, _ = out.attentions
    assert softmax.shape == mixture.shape == (B, 4, T, T)
    assert additive.shape == (B, 4, 2, T)  # query and key pooling weights
    for weights in (softmax, additive, mixture):
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5)
        assert float(weights[2, ..., 6:].abs().max()) == 0.0  # no weight on the third sequence's padding
    tuple_out = model(ids, attention_mask=mask, output_attentions=True, return_dict=False)
    assert len(tuple_out) == 2 and len(tuple_out[1]) == 4


def test_head_mask_and_unknown_arguments_are_refused():
    model = HBertForSequenceClassification(_quiet(num_labels=2))
    ids, _ = padded_batch()
    with pytest.raises(ValueError, match="head_mask is not supported"):
        model(ids, head_mask=torch.ones(4, 4))
    with pytest.raises(TypeError, match="output_scores"):
        model(ids, output_scores=True)


def test_inputs_embeds_equal_input_ids_and_carry_gradients():
    model = HBertForMaskedLM(_quiet()).eval()
    ids, mask = padded_batch()
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    from_ids = model(ids, attention_mask=mask).logits
    from_embeds = model(inputs_embeds=embeds, attention_mask=mask).logits
    assert torch.allclose(from_ids, from_embeds, atol=1e-6)
    from_embeds[0, 1, 7].backward()  # attribution: d logit / d input vectors
    assert embeds.grad is not None and float(embeds.grad[0].abs().sum()) > 0
    with pytest.raises(ValueError, match="exactly one of input_ids"):
        model(ids, inputs_embeds=embeds)


# ------------------------------------------------------------------------------------------ heads and pipelines


def test_token_classification_head_loss_and_pipeline(tmp_path, tokenizer):
    labels = {0: "O", 1: "B-ANIMAL", 2: "I-ANIMAL"}
    model = HBertForTokenClassification(
        _quiet(num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    )
    model.save_pretrained(tmp_path / "ner")
    tokenizer.save_pretrained(tmp_path / "ner")
    again = AutoModelForTokenClassification.from_pretrained(tmp_path / "ner")
    assert isinstance(again, HBertForTokenClassification)
    ids, mask = padded_batch(vocab_size=20)
    tags = torch.randint(0, 3, ids.shape).masked_fill(mask == 0, -100)
    out = again(ids, attention_mask=mask, labels=tags)
    assert out.logits.shape == (*ids.shape, 3)
    real = tags != -100
    assert torch.allclose(out.loss, F.cross_entropy(out.logits[real], tags[real]), atol=1e-6)
    tag = pipeline("token-classification", model=str(tmp_path / "ner"), device="cpu")
    found = tag("the cat sat on the mat")
    assert all(e["entity"] in labels.values() for e in found)


def test_question_answering_head_learns_a_span(tmp_path, tokenizer):
    """transformers 5 removed the question-answering pipeline; this is the run_qa recipe's path instead: question
    and context encoded as a pair with offsets, start/end positions as labels, the answer read from the offsets."""
    HBertForQuestionAnswering(_quiet()).save_pretrained(tmp_path / "qa")
    model = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "qa")
    assert isinstance(model, HBertForQuestionAnswering)
    question, context = "where is the cat ?", "the cat sat on the mat in paris"
    enc = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0]
    in_context = torch.tensor([s == 1 for s in enc.sequence_ids(0)])
    answer = int(torch.nonzero(in_context).flatten()[-1])  # "paris"
    start = end = torch.tensor([answer])
    out = model(**enc, start_positions=start, end_positions=end)
    assert out.start_logits.shape == out.end_logits.shape == enc["input_ids"].shape
    expected = (F.cross_entropy(out.start_logits, start) + F.cross_entropy(out.end_logits, end)) / 2
    assert torch.allclose(out.loss, expected)
    ignored = model(**enc, start_positions=torch.tensor([99]), end_positions=torch.tensor([99])).loss
    assert torch.isnan(ignored) or float(ignored) == 0.0  # positions beyond the sequence are ignored, as in BERT
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        model(**enc, start_positions=start, end_positions=end).loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        out = model.eval()(**enc)
    first, last = int(out.start_logits.argmax()), int(out.end_logits.argmax())
    assert context[int(offsets[first, 0]) : int(offsets[last, 1])] == "paris"


def test_multiple_choice_head(tmp_path):
    HBertForMaskedLM(_quiet()).save_pretrained(tmp_path / "mlm")
    model = AutoModelForMultipleChoice.from_pretrained(tmp_path / "mlm").eval()
    assert isinstance(model, HBertForMultipleChoice)
    ids = torch.randint(5, 120, (2, 3, 10))
    out = model(ids, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    with torch.no_grad():  # each choice is scored on its own: the same pair alone gives the same score
        alone = model(ids[:1, 2:3]).logits
    assert torch.allclose(alone[0, 0], out.logits[0, 2], atol=1e-5)


# ------------------------------------------------------------------------------------------ Trainer, run_mlm style


def _preprocess_logits_for_metrics(logits, labels):  # as transformers' examples/pytorch/run_mlm.py
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def _compute_metrics(eval_preds):
    preds, labels = eval_preds
    labels, preds = labels.reshape(-1), preds.reshape(-1)
    keep = labels != -100
    return {"accuracy": float((preds[keep] == labels[keep]).mean())}


def test_trainer_with_run_mlm_metrics_matches_the_sparse_path(tmp_path):
    model = HBertForMaskedLM(_quiet())
    ids, mask = padded_batch(lengths=(20, 20, 20, 20, 20, 20))
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, torch.full_like(ids, -100))
    data = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist()})
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=2,
        per_device_eval_batch_size=4,
        max_steps=2,
        activation_checkpointing=True,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data,
        eval_dataset=data,
        data_collator=default_data_collator,
        compute_metrics=_compute_metrics,
        preprocess_logits_for_metrics=_preprocess_logits_for_metrics,
    )
    trainer.train()
    assert model.is_activation_checkpointing
    metrics = trainer.evaluate()
    model.eval()
    with torch.no_grad():
        sparse = model(ids, attention_mask=mask, labels=labels, sparse_logits=True)
    expected = float((sparse.logits.argmax(-1) == sparse.masked_labels).float().mean())
    assert metrics["eval_accuracy"] == pytest.approx(expected)


# ------------------------------------------------------------------------------------------ PEFT and sentence-transformers


def test_lora_on_fused_qkv_with_pooler_and_classifier_saved(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base_dir = tmp_path / "base"
    HBertForSequenceClassification(_quiet("hbert-mix", num_labels=2)).save_pretrained(base_dir)
    base = HBertForSequenceClassification.from_pretrained(base_dir)
    lora = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["qkv"], modules_to_save=["pooler", "classifier"])
    model = get_peft_model(base, lora)
    adapted = [n for n, m in model.named_modules() if n.endswith(".qkv") and hasattr(m, "lora_A")]
    assert len(adapted) == 8  # four mixture layers, each with a softmax and an additive branch
    trainable = {n.split(".")[-2] if "lora_" in n else n for n, p in model.named_parameters() if p.requires_grad}
    assert any("pooler" in n for n in trainable) and any("classifier" in n for n in trainable)
    ids, mask = padded_batch()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        trained = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path / "adapter")
    fresh = PeftModel.from_pretrained(HBertForSequenceClassification.from_pretrained(base_dir), tmp_path / "adapter")
    with torch.no_grad():
        reloaded = fresh.eval()(input_ids=ids, attention_mask=mask).logits
        untouched = HBertForSequenceClassification.from_pretrained(base_dir).eval()(ids, attention_mask=mask).logits
    assert torch.allclose(trained, reloaded, atol=1e-6)
    assert not torch.allclose(trained, untouched, atol=1e-4)


def test_sentence_transformers_mean_pooling(tmp_path, tokenizer):
    from sentence_transformers import SentenceTransformer

    model = HBertModel(_quiet(vocab_size=len(tokenizer))).eval()
    model.save_pretrained(tmp_path / "enc")
    tokenizer.save_pretrained(tmp_path / "enc")
    st = SentenceTransformer(str(tmp_path / "enc"), device="cpu")
    sentences = ["the cat sat on the mat", "a dog ran"]
    got = st.encode(sentences, convert_to_numpy=True)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    m = batch["attention_mask"][..., None].float()
    expected = ((hidden * m).sum(1) / m.sum(1)).numpy()
    assert np.allclose(got, expected, atol=1e-5)
