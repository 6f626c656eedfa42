"""Entropy-aware masking and knowledge distillation."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from hbert import HBertConfig, HBertForMaskedLM
from hbert.masking import RandomMasking
from hbert.masking.base import SpecialIds
from hbert.masking.entropy import EntropyMasking
from hbert.masking.teacher import TeacherError, check_teacher, sparse_logits
from hbert.objectives import entropy, kd_loss

IDS = SpecialIds(mask_id=4, special=(0, 1, 2, 3, 4), vocab_size=60, random_low=5)


def _batch(rows=8, length=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(5, 60, (rows, length), generator=g)
    x[:, 0], x[:, -1] = 2, 3
    mask = torch.ones_like(x)
    mask[1::3, 22:] = 0
    x[mask == 0] = 0
    return x, mask


class Planted(EntropyMasking):
    """Entropy masking whose scorer returns planted entropies: position t of every row has entropy t (plus the
    row index / 100, to break ties), so the expected choices are known."""

    def score_pool(self, input_ids, candidates, counts, generator, model):
        pool_counts = torch.minimum(torch.ceil(counts.float() * self.pool).long(), candidates.sum(1))
        from hbert.masking.base import top_k_positions

        u = torch.rand(input_ids.shape, generator=generator)
        pool = top_k_positions(u.masked_fill(~candidates, float("-inf")), pool_counts)
        planted = torch.arange(input_ids.shape[1]).float()[None, :] + torch.arange(input_ids.shape[0])[:, None] / 100
        return pool, torch.where(pool, planted, torch.tensor(float("-inf")))


def _planted(rule, **kwargs):
    return Planted(IDS, ratio=0.2, source="self", rule=rule, self_warmup=0.0, **kwargs)


@pytest.mark.parametrize("rule", ["high", "low"])
def test_high_and_low_pick_exactly_the_extreme_pool_positions(rule):
    x, mask = _batch()
    strategy = _planted(rule, pool=2.0)
    out = strategy(x, mask, torch.Generator().manual_seed(0))
    pool, scores = strategy.last_scored
    candidates = (x >= 5) & mask.bool()
    counts = torch.clamp(torch.round(candidates.sum(1).float() * 0.2).long(), min=1)
    assert torch.equal(out.selected.sum(1), counts)
    assert not out.selected[~candidates].any() and not (out.selected & ~pool).any()
    for row in range(x.shape[0]):
        positions = pool[row].nonzero().squeeze(1).tolist()
        ranked = sorted(positions, key=lambda t: scores[row, t].item(), reverse=rule == "high")
        assert sorted(out.selected[row].nonzero().squeeze(1).tolist()) == sorted(ranked[: counts[row]])


def test_sample_follows_exp_entropy_over_tau():
    # one mask among a pool of 4 known entropies: P(i) = exp(H_i / tau) / sum_j exp(H_j / tau)
    x = torch.full((4000, 6), 7)
    x[:, 0], x[:, -1] = 2, 3
    strategy = Planted(IDS, ratio=0.25, source="self", rule="sample", pool=4.0, temperature=2.0, self_warmup=0.0)
    out = strategy(x, None, torch.Generator().manual_seed(0))
    assert torch.equal(out.selected.sum(1), torch.ones(4000, dtype=torch.long))
    chosen = out.selected.float().mean(0)[1:5]
    h = torch.arange(1, 5).float()
    expected = torch.softmax(h / 2.0, 0)
    assert torch.allclose(chosen, expected, atol=5 * math.sqrt(0.25 / 4000))


def test_mixed_takes_the_configured_share_by_entropy():
    x, mask = _batch(rows=50, length=40)
    strategy = _planted("mixed", pool=3.0, mixed_fraction=0.5)
    out = strategy(x, mask, torch.Generator().manual_seed(0))
    pool, scores = strategy.last_scored
    for row in range(50):
        k = int(out.selected[row].sum())
        k_entropy = round(k * 0.5)
        top = scores[row].topk(k_entropy).indices
        assert out.selected[row, top].all()  # the high-entropy share is always there
        assert (out.selected[row] & ~pool[row]).sum() == 0


def test_self_masking_during_warmup_is_random_masking():
    x, mask = _batch()
    model = HBertForMaskedLM(
        HBertConfig.from_preset(
            "bert", vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    ent = EntropyMasking(IDS, source="self", self_warmup=0.3)
    rnd = RandomMasking(IDS)
    a = ent(x, mask, torch.Generator().manual_seed(5), model=model, progress=0.1)
    b = rnd(x, mask, torch.Generator().manual_seed(5))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    c = ent(x, mask, torch.Generator().manual_seed(5), model=model, progress=0.5)
    assert not torch.equal(c.selected, b.selected)


def test_entropy_equals_a_float64_reference_in_chunks():
    logits = 4 * torch.randn(300, 77)
    p = torch.softmax(logits.double(), -1)
    reference = -(p * p.log()).sum(-1)
    assert torch.allclose(entropy(logits, chunk_rows=64).double(), reference, atol=1e-5)
    assert torch.allclose(
        entropy(logits.bfloat16()).double(),
        -(torch.softmax(logits.bfloat16().double(), -1) * torch.log_softmax(logits.bfloat16().double(), -1)).sum(-1),
        atol=1e-4,
    )


def _record_head_inputs(module):
    shapes = []
    module.register_forward_hook(lambda m, args, out: shapes.append((tuple(args[0].shape), tuple(out.shape))))
    return shapes


def test_scoring_never_builds_a_batch_by_length_by_vocab_tensor():
    x, mask = _batch(rows=6, length=30)
    model = HBertForMaskedLM(
        HBertConfig.from_preset(
            "hbert-v1", vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
        )
    )
    shapes = _record_head_inputs(model.head.decoder)
    strategy = EntropyMasking(IDS, source="self", self_warmup=0.0, pool=2.0)
    out = strategy(x, mask, torch.Generator().manual_seed(0), model=model)
    pool = strategy.last_scored[0]
    assert shapes == [((int(pool.sum()), 16), (int(pool.sum()), 60))]  # one forward, pool rows only
    assert int(pool.sum()) < x.numel() and out.selected.sum() > 0
    # a Hugging Face BERT teacher: its encoder runs on the batch, its MLM head on the pool rows only
    bert = BertForMaskedLM(
        BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).eval()
    bert_shapes = _record_head_inputs(bert.cls)
    teacher = EntropyMasking(IDS, source="teacher", teacher=bert, pool=2.0)
    teacher(x, mask, torch.Generator().manual_seed(0))
    n_pool = int(teacher.last_scored[0].sum())
    assert bert_shapes == [((n_pool, 16), (n_pool, 60))]


def test_token_stats_learns_from_the_training_forward():
    x, mask = _batch(rows=16)
    strategy = EntropyMasking(IDS, source="self", scoring="token-stats", self_warmup=0.0, stats_rows=10_000)
    out = strategy(x, mask, torch.Generator().manual_seed(0))
    labels = out.labels[out.selected]
    strategy.observe(out, 50 * F.one_hot(labels, 60).float())  # confident, correct predictions: entropy ~0
    table = strategy.token_entropy
    seen = torch.zeros(60, dtype=torch.bool)
    seen[labels] = True
    assert (table[seen] < math.log(60) * 0.96).all()  # moved 5% of the way towards 0
    assert torch.allclose(table[~seen], torch.full_like(table[~seen], math.log(60)))
    low = EntropyMasking(IDS, source="self", scoring="token-stats", rule="low", self_warmup=0.0)
    low.load_state_dict(strategy.state_dict())
    picked = low(x, mask, torch.Generator().manual_seed(1))
    for row in range(x.shape[0]):  # "low" takes the row's lowest-average tokens first
        candidates = ((x[row] >= 5) & mask[row].bool()).nonzero().squeeze(1)
        values = table[x[row, candidates]]
        chosen = table[x[row, picked.selected[row]]]
        assert chosen.max() <= values.sort().values[len(chosen) - 1] + 1e-6


def test_kd_loss_matches_a_reference_and_only_the_student_gets_gradients():
    student = torch.randn(50, 40, requires_grad=True)
    teacher = torch.randn(50, 40, requires_grad=True)
    T = 2.5
    got = kd_loss(student, teacher, T)
    p_t = torch.softmax(teacher.detach().double() / T, -1)
    ref = (p_t * (p_t.log() - torch.log_softmax(student.detach().double() / T, -1))).sum(-1).mean() * T * T
    assert abs(got.item() - ref.item()) < 1e-5
    got.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0 and teacher.grad is None
    assert kd_loss(teacher.detach(), teacher.detach(), T).abs().item() < 1e-6


def test_a_teacher_with_another_vocabulary_is_refused(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[f"w{i}" for i in range(55)]]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    student_tok = BertTokenizer.from_pretrained(tmp_path)
    bert = BertForMaskedLM(
        BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    with pytest.raises(TeacherError, match=r"vocab_size 30522 \(student: 60\)"):
        check_teacher("bert-like", bert.config, 60, student_tok)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "vocab.txt").write_text("\n".join(["[UNK]", "[PAD]", *vocab[2:]]) + "\n")
    with pytest.raises(TeacherError, match=r"\[PAD\] id 1 \(student: 0\)"):
        check_teacher(str(tmp_path / "t"), BertConfig(vocab_size=60, pad_token_id=1), 60, student_tok)


def test_sparse_logits_rows_match_full_logits():
    x, _ = _batch(rows=3, length=12)
    positions = torch.zeros_like(x, dtype=torch.bool)
    positions[:, 3] = positions[1, 7] = True
    bert = BertForMaskedLM(
        BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).eval()
    with torch.no_grad():
        assert torch.allclose(sparse_logits(bert, x, positions), bert(x).logits[positions], atol=1e-5)
        model = HBertForMaskedLM(
            HBertConfig.from_preset(
                "additive",
                vocab_size=60,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=32,
            )
        ).eval()
        assert torch.allclose(sparse_logits(model, x, positions), model(x).logits[positions], atol=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"rule": "median"}, "masking.rule"),
        ({"pool": 0.5}, "masking.pool"),
        ({"source": "oracle"}, "masking.source"),
        ({"temperature": 0}, "temperature"),
    ],
)
def test_bad_entropy_settings(bad, message):
    with pytest.raises(ValueError, match=message):
        EntropyMasking(IDS, **{"source": "self", **bad})
