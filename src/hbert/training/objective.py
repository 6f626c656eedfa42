"""The pretraining objective: sparse MLM cross-entropy at the masked positions, optionally mixed with distillation
from a teacher, L = alpha CE + (1 - alpha) T^2 KL(teacher || student), and the weighting that makes the sum of the
micro-batch losses the loss of the whole batch (each micro-batch weighs by its share of the batch's masked tokens).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

from ..masking.base import MaskedBatch
from ..masking.teacher import sparse_logits, static_logits
from ..objectives import kd_loss
from ..runtime import Timer
from .errors import TrainingError


def micro_batches(full: MaskedBatch, accumulation: int) -> Iterator[tuple[slice, MaskedBatch, torch.Tensor]]:
    """(rows, micro-batch, share) for each of ``accumulation`` equal row slices of a masked batch; ``share`` is the
    micro-batch's share of the batch's labelled tokens, so that sum(share x mean micro loss) = mean batch loss."""
    micro = full.input_ids.shape[0] // accumulation
    n_labelled = (full.labels != -100).sum().clamp(min=1)
    for m in range(accumulation):
        rows = slice(m * micro, (m + 1) * micro)
        positions = None if full.positions is None else full.positions[rows]
        part = dataclasses.replace(full, input_ids=full.input_ids[rows], labels=full.labels[rows],
                                   selected=full.selected[rows], positions=positions)  # fmt: skip
        yield rows, part, (part.labels != -100).sum() / n_labelled


class PretrainObjective:
    """CE, or CE + KD when ``kd.alpha`` < 1. The teacher's logits come from its own forward at the masked positions,
    or (``kd.reuse_scoring_forward``) from the masking strategy's scoring forward of the same teacher.
    ``kd_seconds`` adds up the time of the teacher forwards (charged to the budget like scoring)."""

    def __init__(self, kd, masking, teachers, device: torch.device, fallback_teacher: str = ""):
        if not 0.0 <= kd.alpha <= 1.0:
            raise TrainingError(f"objective.kd.alpha={kd.alpha}; accepted: 0..1 (1 = no distillation)")
        self.alpha, self.temperature, self.reuse = kd.alpha, kd.temperature, kd.reuse_scoring_forward
        self.use_kd = kd.alpha < 1.0
        self.masking, self.device = masking, device
        self.teacher = teachers.get(kd.teacher or fallback_teacher) if self.use_kd else None
        self.teacher_bf16 = teachers.precision == "bf16"
        if self.use_kd and self.reuse and not masking.shares_scoring_forward(self.teacher):
            raise TrainingError(
                "objective.kd.reuse_scoring_forward needs masking=entropy with masking.source=teacher, "
                "masking.scoring=candidates and the same teacher for both"
            )
        masking.keep_logits = self.use_kd and self.reuse
        self.timer = Timer()  # teacher forwards (lazy on the static-shape path on a GPU: no synchronisation)
        self.teacher_logits_static = static_logits  # the engine may swap in a compiled version

    @property
    def kd_seconds(self) -> float:
        return self.timer.seconds

    def __call__(self, out, masked: MaskedBatch, rows: slice, share: torch.Tensor):
        """(weighted loss, KD term) of a micro-batch from the student's sparse-head output ``out``."""
        if not self.use_kd:
            return out.loss * share, torch.zeros((), device=self.device)
        valid = None if masked.positions is None else out.masked_labels != -100  # static index: padding rows
        kd_term = kd_loss(out.logits, self.teacher_logits(masked, rows), self.temperature, valid)
        return (self.alpha * out.loss + (1 - self.alpha) * kd_term) * share, kd_term.detach()

    @torch.no_grad()
    def teacher_logits(self, masked: MaskedBatch, rows: slice) -> torch.Tensor:
        """(n_masked, V) teacher logits at the micro-batch's masked positions, in row-major order (on the
        static-shape path: at the rows of ``masked.positions``)."""
        with self.timer.region(self.device):
            if self.reuse and masked.positions is not None:
                return self.masking.teacher_rows_static(masked.positions, rows)
            if self.reuse:
                return self.masking.teacher_rows(masked.selected, rows)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.teacher_bf16):
                if masked.positions is not None:
                    return self.teacher_logits_static(self.teacher, masked.input_ids, masked.positions)
                return sparse_logits(self.teacher, masked.input_ids, masked.selected)
