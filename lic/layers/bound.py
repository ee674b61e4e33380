"""A lower bound whose gradient does not die at the bound.

``torch.clamp_min(x, b)`` has zero gradient wherever ``x < b``: a parameter that once steps below
its bound (a GDN γ entry starting *at* its bound, a scale predicted below the scale table) then
gets no gradient again and stays there for good.  ``lower_bound`` computes the same values, but
lets the gradient through wherever it would move ``x`` up, towards the region where ``x`` matters
again (as tensorflow-compression's and CompressAI's ``LowerBound`` do):

    forward:   max(x, b)
    backward:  g   where x ≥ b  or  g < 0   (a descent step on x would increase it)
               0   elsewhere

Only training sees the difference; values, and so every coded byte, are those of ``clamp_min``.
"""

from __future__ import annotations

import torch


class _LowerBound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return torch.clamp_min(x, bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """max(x, bound), with the gradient kept wherever it points up (see the module docstring)."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.clamp_min(x, bound)
    return _LowerBound.apply(x, float(bound))
