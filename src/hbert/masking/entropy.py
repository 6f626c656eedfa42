"""Entropy-aware masking: mask the tokens a model is most (or least) uncertain about.

Source of the entropy: a ``teacher`` (reference masked LM) or ``self`` (the model being trained, in eval mode,
without gradients; random masking during the first ``self_warmup`` of the budget).

Scoring:
- ``candidates``: a random pool of c*k positions per sequence is masked, one no-grad forward gives logits at the
  pool positions only (a model cannot be uncertain about a token it sees), their entropy is computed in row
  chunks, and the rule keeps k of them.
- ``token-stats``: no extra forward; a running average of entropy per vocabulary id, updated from the training
  forward's own predictions at masked positions; positions are ranked by their token's average.

Rules: ``high`` (top-k entropy), ``low`` (bottom-k), ``sample`` (k drawn without replacement with probability
proportional to exp(H / tau), by Gumbel top-k), ``mixed`` (round(mixed_fraction * k) by high entropy, the rest at
random). k is fixed per sequence, as for random masking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..objectives import entropy
from ..runtime import Timer
from ..settings import check, setting
from .base import (
    MaskedBatch,
    MaskingStrategy,
    SpecialIds,
    apply_replacement,
    candidate_mask,
    mask_counts,
    register_masking,
    static_positions,
    top_k_positions,
)
from .teacher import pool_entropy, static_pool_entropy

RULES = ("high", "low", "sample", "mixed")
SOURCES = ("teacher", "self")
SCORINGS = ("candidates", "token-stats")


@register_masking("entropy")
class EntropyMasking(MaskingStrategy):
    @dataclass
    class Settings:
        """``masking.*`` settings of entropy masking (see the module's docstring)."""

        source: str = setting("teacher", choices=SOURCES)
        scoring: str = setting("candidates", choices=SCORINGS)
        rule: str = setting("high", choices=RULES)
        pool: float = setting(2.0, low=1.0, high=1e6)  # candidates: a pool of pool x k positions per sequence
        temperature: float = setting(1.0, low=0.0, high=1e6, low_open=True)  # sample: P ~ exp(H / temperature)
        mixed_fraction: float = setting(0.5, low=0.0, high=1.0)  # mixed: share of the k masks chosen by entropy
        self_warmup: float = setting(0.1, low=0.0, high=1.0)  # source=self: random masking for this budget share

    def __init__(
        self,
        ids: SpecialIds,
        ratio: float = 0.15,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
        source: str = "teacher",
        scoring: str = "candidates",
        rule: str = "high",
        pool: float = 2.0,
        temperature: float = 1.0,
        mixed_fraction: float = 0.5,
        self_warmup: float = 0.1,
        teacher=None,
        stats_momentum: float = 0.05,
        stats_rows: int = 64,
        precision: str = "fp32",
    ):
        super().__init__(ids, ratio, mask_prob, random_prob)
        own = self.Settings(source, scoring, rule, pool, temperature, mixed_fraction, self_warmup)
        check(own, "masking.", ValueError)  # the declared choices and ranges, as a run's config is checked
        if source == "teacher" and scoring == "candidates" and teacher is None:
            raise ValueError("masking.source=teacher needs a teacher (masking.teacher=PATH)")
        self.source, self.scoring, self.rule = source, scoring, rule
        self.pool, self.temperature, self.mixed_fraction = pool, temperature, mixed_fraction
        self.self_warmup = self_warmup if source == "self" else 0.0
        self.teacher = teacher
        self.momentum = stats_momentum
        self.stats_rows = stats_rows
        self.precision = precision
        self.token_entropy: torch.Tensor | None = None  # (V,) running average, token-stats scoring
        self.token_seen = torch.zeros(ids.vocab_size, dtype=torch.bool)  # (V,) observed at least once
        self.timer = Timer()  # scorer forwards (lazy on the static-shape path on a GPU: no synchronisation)
        self.score_static = static_pool_entropy  # the engine may swap in a compiled version
        self.last_scored: tuple[torch.Tensor, torch.Tensor] | None = None  # (pool mask, entropies) of the last batch
        self.keep_logits = False
        self._pool_logits: torch.Tensor | None = None
        self._pool_index: torch.Tensor | None = None

    @classmethod
    def from_config(cls, config, ids: SpecialIds, teacher_for=None, precision: str = "fp32") -> EntropyMasking:
        teacher = teacher_for(config.teacher) if config.source == "teacher" and teacher_for else None
        return cls(
            ids, config.ratio, config.mask_prob, config.random_prob, source=config.source, scoring=config.scoring,
            rule=config.rule, pool=config.pool, temperature=config.temperature, mixed_fraction=config.mixed_fraction,
            self_warmup=config.self_warmup, teacher=teacher, precision=precision,
        )  # fmt: skip

    @property
    def scoring_seconds(self) -> float:
        return self.timer.seconds

    def max_pool_count(self, seq_len: int) -> int:
        """The largest candidate pool of a row (the width of the pool's static index), worked out once per length
        on the host with the operations ``score_pool`` uses."""
        widths = self.__dict__.setdefault("_pool_widths", {})
        if seq_len not in widths:
            k = torch.tensor([self.max_count(seq_len)])
            widths[seq_len] = int(torch.minimum(torch.ceil(k.float() * self.pool).long(), torch.tensor([seq_len]))[0])
        return widths[seq_len]

    def shares_scoring_forward(self, teacher) -> bool:
        return teacher is not None and teacher is self.teacher and self.scoring == "candidates"

    def teacher_rows(self, selected: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        """The last scoring forward's logits at ``selected`` positions of the batch rows ``rows`` (selected
        positions are always in the pool)."""
        if self._pool_logits is None:
            raise RuntimeError("no scoring forward kept: set keep_logits and score a batch first")
        return self._pool_logits[self._pool_index[rows][selected]]

    def teacher_rows_static(self, positions: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        """``teacher_rows`` at a (b, K) static index of the batch rows ``rows`` (padding entries give some pool
        row; their label is -100, so they carry no weight)."""
        if self._pool_logits is None:
            raise RuntimeError("no scoring forward kept: set keep_logits and score a batch first")
        index = self._pool_index[rows].gather(1, positions).reshape(-1).clamp(min=0)
        return self._pool_logits.index_select(0, index)

    # ----------------------------------------------------------------------------------------- scoring

    def _scorer_entropy(self, model, input_ids: torch.Tensor, positions: torch.Tensor):
        """Entropy at the pool: ``positions`` a (B, T) mask, or on the static-shape path a (B, K) static index."""
        scorer = self.teacher if self.source == "teacher" else model
        was_training = scorer.training
        scorer.eval()
        try:
            with torch.no_grad():
                dtype = torch.bfloat16 if self.precision == "bf16" else None
                with torch.autocast(input_ids.device.type, dtype=dtype, enabled=dtype is not None):
                    if positions.dtype == torch.bool:
                        return pool_entropy(scorer, input_ids, positions, keep_logits=self.keep_logits)
                    return self.score_static(scorer, input_ids, positions, self.keep_logits)
        finally:
            scorer.train(was_training)

    def score_pool(self, input_ids, candidates, counts, generator, model) -> tuple[torch.Tensor, torch.Tensor]:
        """(pool mask (B, T), entropy (B, T) float32 with -inf outside the pool)."""
        pool_counts = torch.minimum(torch.ceil(counts.float() * self.pool).long(), candidates.sum(1))
        u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
        pool = top_k_positions(u.masked_fill(~candidates, float("-inf")), pool_counts)
        if self.static:
            return pool, self._score_pool_static(model, input_ids, pool)
        with self.timer.region(input_ids.device):
            h, logits = self._scorer_entropy(model, input_ids.masked_fill(pool, self.ids.mask_id), pool)  # (n_pool,)
            if self.keep_logits:  # (n_pool, V), for distillation from the same forward
                self._pool_logits = logits
                self._pool_index = torch.full(input_ids.shape, -1, dtype=torch.long, device=input_ids.device)
                self._pool_index[pool] = torch.arange(logits.shape[0], device=input_ids.device)
        scores = torch.full(input_ids.shape, float("-inf"), device=input_ids.device)
        scores[pool] = h
        return pool, scores

    def _score_pool_static(self, model, input_ids: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """The static-shape scoring: the pool as a (B, Kp) static index, one forward at its B x Kp rows (padding
        rows scored too, then ignored), scores written back with a scatter: no data-dependent size."""
        positions = static_positions(pool, self.max_pool_count(input_ids.shape[1]))
        in_pool = pool.gather(1, positions)
        with self.timer.region(input_ids.device):
            h, logits = self._scorer_entropy(model, input_ids.masked_fill(pool, self.ids.mask_id), positions)
            if self.keep_logits:  # (B x Kp, V); _pool_index maps a position to its row (-1 outside the pool)
                self._pool_logits = logits
                rows = torch.arange(logits.shape[0], device=input_ids.device).view_as(positions)
                self._pool_index = torch.full(input_ids.shape, -1, dtype=torch.long, device=input_ids.device)
                self._pool_index.scatter_(1, positions, rows.masked_fill(~in_pool, -1))
        h = h.view_as(positions).masked_fill(~in_pool, float("-inf"))
        return torch.full(input_ids.shape, float("-inf"), device=input_ids.device).scatter(1, positions, h)

    def score_token_stats(self, input_ids, candidates) -> tuple[torch.Tensor, torch.Tensor]:
        table = self._table(input_ids.device)
        seen = self.token_seen.to(input_ids.device)
        # a token never observed yet counts as average, so "high" does not chase unseen rare tokens forever
        if self.static:  # the same average, without a data-dependent size or a host-side test
            n_seen = seen.sum()
            prior = torch.where(n_seen > 0, (table * seen).sum() / n_seen.clamp(min=1), 0.0)
        else:
            prior = table[seen].mean() if seen.any() else table.new_tensor(0.0)
        scores = torch.where(seen[input_ids], table[input_ids], prior).masked_fill(~candidates, float("-inf"))
        return candidates, scores

    def _table(self, device) -> torch.Tensor:
        if self.token_entropy is None or self.token_entropy.device != device:
            start = float(torch.log(torch.tensor(float(self.ids.vocab_size))))  # unseen tokens: maximal uncertainty
            old = self.token_entropy
            self.token_entropy = torch.full((self.ids.vocab_size,), start, device=device)
            if old is not None:
                self.token_entropy.copy_(old.to(device))
        return self.token_entropy

    # ----------------------------------------------------------------------------------------- selection

    def choose(self, scores: torch.Tensor, pool: torch.Tensor, counts: torch.Tensor, generator) -> torch.Tensor:
        """Apply the rule to (B, T) scores (-inf = not eligible); exactly counts[b] positions per row."""
        if self.rule == "high":
            return top_k_positions(scores, counts)
        if self.rule == "low":
            return top_k_positions(torch.where(pool, -scores, scores), counts)
        if self.rule == "sample":
            u = torch.rand(scores.shape, generator=generator, device=scores.device).clamp_(1e-12, 1 - 1e-12)
            gumbel = -torch.log(-torch.log(u))
            return top_k_positions(torch.where(pool, scores / self.temperature + gumbel, scores), counts)
        k_entropy = torch.round(counts.float() * self.mixed_fraction).long()
        by_entropy = top_k_positions(scores, k_entropy)
        u = torch.rand(scores.shape, generator=generator, device=scores.device)
        rest = u.masked_fill(~pool | by_entropy, float("-inf"))
        return by_entropy | top_k_positions(rest, counts - k_entropy)

    def __call__(self, input_ids, attention_mask=None, generator=None, model=None, progress: float = 0.0):
        candidates = candidate_mask(input_ids, attention_mask, self.ids)
        counts = mask_counts(candidates, self.ratio)
        if progress < self.self_warmup:  # self-masking warm-up: exactly random masking
            scores = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
            selected = top_k_positions(scores.masked_fill(~candidates, float("-inf")), counts)
            stats = {"entropy_warmup": 1.0}
        else:
            if self.scoring == "candidates":
                pool, scores = self.score_pool(input_ids, candidates, counts, generator, model)
            else:
                pool, scores = self.score_token_stats(input_ids, candidates)
            selected = self.choose(scores, pool, counts, generator)
            self.last_scored = (pool, scores)
            if self.static:  # kept on the device; read only if the step is logged
                stats = {"entropy_chosen": _finite_mean(scores, selected), "entropy_scored": _finite_mean(scores, pool)}
            else:
                chosen, scored = scores[selected], scores[pool]
                stats = {
                    "entropy_chosen": float(chosen[torch.isfinite(chosen)].mean()) if selected.any() else 0.0,
                    "entropy_scored": float(scored[torch.isfinite(scored)].mean()) if pool.any() else 0.0,
                }
        masked, labels = apply_replacement(input_ids, selected, self.ids, self.mask_prob, self.random_prob, generator)
        return MaskedBatch(masked, labels, selected, stats)

    @torch.no_grad()
    def observe(self, masked: MaskedBatch, logits: torch.Tensor) -> None:
        """token-stats: fold the training forward's entropies at the masked positions into the per-token average."""
        if self.scoring != "token-stats" or logits.shape[0] == 0:
            return
        if masked.positions is not None:
            self._observe_static(masked, logits)
            return
        table = self._table(logits.device)
        ids = masked.labels[masked.labels != -100]
        if logits.shape[0] > self.stats_rows:  # an evenly spaced subset of rows keeps the update nearly free
            rows = torch.linspace(0, logits.shape[0] - 1, self.stats_rows, device=logits.device).long()
            logits, ids = logits[rows], ids[rows]
        h = entropy(logits.detach())
        sums = torch.zeros_like(table).index_add_(0, ids, h)
        seen = torch.zeros_like(table).index_add_(0, ids, torch.ones_like(h))
        hit = seen > 0
        first = hit & ~self.token_seen.to(hit.device)
        table[hit] = (1 - self.momentum) * table[hit] + self.momentum * (sums[hit] / seen[hit])
        table[first] = sums[first] / seen[first]  # first observation: take it as is
        self.token_seen = self.token_seen.to(hit.device) | hit

    def _observe_static(self, masked: MaskedBatch, logits: torch.Tensor) -> None:
        """``observe`` on the static-shape path: rows are those of ``masked.positions``, padding rows (label
        -100) weigh nothing; element-wise updates only."""
        table = self._table(logits.device)
        ids = masked.labels.gather(1, masked.positions).reshape(-1)
        if logits.shape[0] > self.stats_rows:
            rows = torch.linspace(0, logits.shape[0] - 1, self.stats_rows, device=logits.device).long()
            logits, ids = logits[rows], ids[rows]
        weight = (ids != -100).float()
        ids = ids.clamp(min=0)
        h = entropy(logits.detach()) * weight
        sums = torch.zeros_like(table).index_add_(0, ids, h)
        seen = torch.zeros_like(table).index_add_(0, ids, weight)
        hit = seen > 0
        known = self.token_seen.to(hit.device)
        mean = sums / seen.clamp(min=1)
        table.copy_(torch.where(hit & known, (1 - self.momentum) * table + self.momentum * mean, table))
        table.copy_(torch.where(hit & ~known, mean, table))  # first observation: take it as is
        self.token_seen = known | hit

    def state_dict(self) -> dict:
        table = None if self.token_entropy is None else self.token_entropy.cpu()
        return {"token_entropy": table, "token_seen": self.token_seen.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("token_entropy") is not None:
            self.token_entropy = state["token_entropy"].clone()
        if state.get("token_seen") is not None:
            self.token_seen = state["token_seen"].clone()


def _finite_mean(scores: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """The mean of the finite ``scores`` at ``where`` (0 when there are none), as a device scalar."""
    keep = where & torch.isfinite(scores)
    return torch.where(keep, scores, 0.0).sum() / keep.sum().clamp(min=1)
