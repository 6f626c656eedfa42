"""Training objectives beyond the model's own sparse MLM cross-entropy: entropy of predictions and knowledge
distillation, both computed on (n_rows, V) logits of the masked positions only, in row chunks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .runtime import chunk_rows as _chunk_rows

CHUNK_ROWS = 32  # 32 x 30,522 float32 = 4 MB on a CPU: each chunk's temporaries stay in cache


@torch.no_grad()
def entropy(logits: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
    """Predictive entropy H = -sum_v p(v) log p(v) of each row of (n, V) logits, in float32, ``chunk_rows`` rows
    at a time (default: ``CHUNK_ROWS`` on a CPU, by memory on a GPU). One exponential per element: with m = max z,
    e = exp(z - m), s = sum e, H = log s + m - (sum e z) / s."""
    if chunk_rows is None:
        chunk_rows = _chunk_rows(logits.device, 3 * 4 * logits.shape[-1], CHUNK_ROWS)
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    for start in range(0, logits.shape[0], chunk_rows):
        z = logits[start : start + chunk_rows].float()
        m = z.amax(dim=-1, keepdim=True)
        e = torch.exp(z - m)
        s = e.sum(dim=-1)
        out[start : start + chunk_rows] = torch.log(s) + m.squeeze(-1) - torch.linalg.vecdot(e, z) / s
    return out


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float, valid: torch.Tensor | None = None):
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over rows (the masked positions), or over
    the ``valid`` rows only (the static-shape path's index has padding rows).

    The teacher's logits carry no gradient; the T^2 factor keeps the gradient scale independent of T (Hinton et al.;
    DistilBERT). A student whose vocabulary is padded (e.g. to a multiple of 64) is compared on the teacher's ids
    only: the padding ids are never a label."""
    t = temperature
    student = student[..., : teacher.shape[-1]]
    log_p_student = torch.log_softmax(student.float() / t, dim=-1)
    log_p_teacher = torch.log_softmax(teacher.detach().float() / t, dim=-1)
    if valid is None:
        return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean") * (t * t)
    per_row = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="none").sum(-1)
    return (per_row * valid).sum() / valid.sum().clamp(min=1) * (t * t)
