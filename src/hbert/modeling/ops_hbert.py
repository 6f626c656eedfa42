"""Two small kernels in plain PyTorch that make a CPU training step markedly cheaper; both compute exactly the
function of the standard op. Copied next to saved checkpoints with the modeling code.

- ``dropout``: on CPU, ``torch.nn.functional.dropout`` draws one Mersenne-Twister number per element; drawing 64-bit
  words and using each as four 15-bit uniforms is about 4x faster and keeps the same distribution (drop probability
  rounded to 1/32768). Elsewhere (CUDA's fused Philox kernel, ``torch.compile``) the standard op is used.
- ``cross_entropy``: mean cross-entropy over the rows of a (n, V) logits matrix. The standard op writes a (n, V)
  log-softmax, then a (n, V) zero tensor and a second (n, V) pass in backward; this one keeps only the row
  log-sum-exp and writes the gradient (softmax - one-hot) in a single pass, in cache-sized chunks (CPU only:
  on a GPU each chunk would be a kernel launch, and the standard op is used).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_RESOLUTION = 1 << 15


def _keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()
    uniform15 = words.view(torch.int16)[:n] & (_RESOLUTION - 1)  # four 15-bit uniforms per word
    return (uniform15 >= round(p * _RESOLUTION)).view(shape)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = _keep_mask(x.shape, p, x.device)
        ctx.scale = 1.0 / (1.0 - p)
        ctx.save_for_backward(keep)
        return x.mul(keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0 or torch.compiler.is_compiling():
        return F.dropout(x, p, training=True)
    return _Dropout.apply(x, p)


class Dropout(torch.nn.Dropout):
    """``nn.Dropout`` with the fast CPU mask above (same parameters, same state dict: none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


_ROWS = 128  # rows per chunk: a chunk's float32 copy stays in cache instead of a (n, V) float32 tensor


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        lse = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        for start in range(0, logits.shape[0], _ROWS):
            lse[start : start + _ROWS] = torch.logsumexp(logits[start : start + _ROWS].float(), dim=-1)
        picked = logits.gather(1, labels[:, None]).squeeze(1).float()
        ctx.save_for_backward(logits, labels, lse)
        return (lse - picked).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, labels, lse = ctx.saved_tensors
        n = logits.shape[0]
        scale = grad.float() / n
        g = torch.empty_like(logits)
        for start in range(0, n, _ROWS):
            rows = slice(start, start + _ROWS)
            g[rows] = torch.exp(logits[rows].float() - lse[rows, None]).mul_(scale)  # softmax, one pass
        g[torch.arange(n, device=g.device), labels] -= scale.to(g.dtype)
        return g, None


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (n, V) logits against (n,) labels, all of them valid (no ignore index). The chunked
    kernel is for CPUs; a GPU (and ``torch.compile``) gets the standard op, a few fused kernels."""
    if torch.compiler.is_compiling() or logits.shape[0] == 0 or logits.device.type != "cpu":
        return F.cross_entropy(logits.float(), labels)
    return _CrossEntropy.apply(logits, labels)
