import math
from itertools import pairwise

import pytest
import torch

from hbert.budget import Budget, BudgetError, BudgetState, parse_interval
from hbert.masking import RandomMasking
from hbert.masking.base import SpecialIds
from hbert.optim import lr_multiplier


@pytest.mark.parametrize("schedule", ["linear", "cosine", "triangle"])
def test_schedules_reach_zero_exactly_at_the_end(schedule):
    assert lr_multiplier(1.0, schedule, 0.1) == 0.0
    assert lr_multiplier(0.0, schedule, 0.1) == 0.0
    values = [lr_multiplier(p / 100, schedule, 0.1) for p in range(101)]
    peak = values.index(max(values))
    assert all(a >= b - 1e-12 for a, b in pairwise(values[peak:]))  # never rises after the peak
    assert all(a <= b + 1e-12 for a, b in pairwise(values[: peak + 1]))
    assert max(values) == pytest.approx(1.0)


def test_linear_warmup_then_decay():
    assert lr_multiplier(0.05, "linear", 0.1) == pytest.approx(0.5)
    assert lr_multiplier(0.1, "linear", 0.1) == pytest.approx(1.0)
    assert lr_multiplier(0.55, "linear", 0.1) == pytest.approx(0.5)
    assert lr_multiplier(0.55, "cosine", 0.1) == pytest.approx(0.5)
    assert lr_multiplier(0.25, "triangle", 0.1) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text, kind, amount",
    [
        ("10m", "time", 600),
        ("1h30m", "time", 5400),
        ("45s", "time", 45),
        ("50M-tokens", "tokens", 5e7),
        ("20000-steps", "steps", 20000),
        ("20k-steps", "steps", 20000),
        ("24h", "time", 86400),
    ],
)
def test_budget_parsing(text, kind, amount):
    assert Budget.parse(text) == Budget(kind, amount)


@pytest.mark.parametrize("text", ["ten minutes", "10", "5x", "-3m", "0-steps", "12-epochs"])
def test_unparsable_budget_names_the_accepted_forms(text):
    with pytest.raises(BudgetError, match="accepted: a time such as"):
        Budget.parse(text)


def test_progress_by_kind_and_intervals():
    state = BudgetState(steps=50, tokens=5000, charged_seconds=30)
    assert state.progress(Budget("steps", 100)) == 0.5
    assert state.progress(Budget("tokens", 10000)) == 0.5
    assert state.progress(Budget("time", 60)) == 0.5
    assert state.exhausted(Budget("steps", 50))
    assert parse_interval("5m") == ("time", 300) and parse_interval("500-steps") == ("steps", 500)
    assert parse_interval("0") == ("off", 0)


IDS = SpecialIds(mask_id=4, special=(0, 1, 2, 3, 4), vocab_size=100, random_low=5)


def _batch(rows=64, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(5, 100, (rows, length), generator=g)
    x[:, 0], x[:, -1] = 2, 3
    x[::3, 17] = 3  # separators inside some rows
    mask = torch.ones_like(x)
    mask[1::4, 30:] = 0  # padding at the end of some rows
    x[mask == 0] = 0
    return x, mask


def test_random_masking_exact_counts_and_never_special_or_padding():
    x, mask = _batch()
    out = RandomMasking(IDS, ratio=0.15)(x, mask, torch.Generator().manual_seed(1))
    candidates = (x >= 5) & mask.bool()
    expected = torch.clamp(torch.round(candidates.sum(1).float() * 0.15).long(), min=1)
    assert torch.equal(out.selected.sum(1), expected)
    assert not out.selected[~candidates].any()
    assert torch.equal(out.labels != -100, out.selected)
    assert torch.equal(out.labels[out.selected], x[out.selected])
    assert torch.equal(out.input_ids[~out.selected], x[~out.selected])


def test_replacement_shares_within_tolerance():
    x, mask = _batch(rows=2000, length=64)
    out = RandomMasking(IDS, ratio=0.3, mask_prob=0.8, random_prob=0.1)(x, mask, torch.Generator().manual_seed(2))
    sel = out.selected
    n = int(sel.sum())
    as_mask = int((out.input_ids[sel] == 4).sum()) / n
    unchanged = int((out.input_ids[sel] == x[sel]).sum()) / n
    randomised = 1 - as_mask - unchanged
    sd = math.sqrt(0.1 * 0.9 / n)
    assert abs(as_mask - 0.8) < 5 * math.sqrt(0.16 / n)
    # a random draw can hit the original token (1 in 95): it then counts as unchanged
    assert abs(randomised - 0.1 * 94 / 95) < 5 * sd and abs(unchanged - (0.1 + 0.1 / 95)) < 5 * sd
    assert (out.input_ids[sel] >= 4).all()  # random replacements are ordinary tokens (or [MASK])


def test_masking_is_seeded():
    x, mask = _batch()
    a = RandomMasking(IDS)(x, mask, torch.Generator().manual_seed(3))
    b = RandomMasking(IDS)(x, mask, torch.Generator().manual_seed(3))
    c = RandomMasking(IDS)(x, mask, torch.Generator().manual_seed(4))
    assert torch.equal(a.input_ids, b.input_ids) and not torch.equal(a.selected, c.selected)


def test_bad_masking_settings():
    with pytest.raises(ValueError, match=r"masking\.ratio"):
        RandomMasking(IDS, ratio=1.5)
    with pytest.raises(ValueError, match="a sum of at most 1"):
        RandomMasking(IDS, mask_prob=0.9, random_prob=0.2)
