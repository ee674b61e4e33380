"""Encoder-side latent refinement for the models with quantized latents (``lic compress --refine N``):
the one-shot transform codecs, and the scalable recurrent codec (su2020, all layers' latents at once).

The analysis transform g_a is trained to give good latents *on average*; for one given image the
encoder can search for better ones itself (the "amortization gap": Cremer et al., ICML 2018; Campos,
Meierhans, Djelouah, Schroers, "Content Adaptive Optimization for Neural Image Compression", CVPR-W
2019).  ``refine_latents`` takes N gradient steps on the image's own rate–distortion cost, the one the
model was trained on,

    J(y) = bits(ŷ, ẑ) / pixels + λ_Q · D(x, g_s(ŷ · γ'_Q))      (the model's ``rd_cost``; D = 255²·MSE for
                                                             bmshj2018, the MS-SSIM/MAE mix for attention-*),

starting from g_a's output, through stochastic Gumbel annealing of the rounding (SGA: Yang, Bamler,
Mandt, "Improving Inference for Neural Image Compression", NeurIPS 2020): each latent is rounded down
or up at random, with probabilities that favour the nearer integer more and more as the temperature
falls, so the search ends on the rounding the coder will apply::

    x ─g_a─► y₀ ─► y ──┬─ SGA(y, τ) ─► ỹ ─┬─ latent codec's relaxed bits (hyperprior: ẑ = round(h_a(|y|)),
          ▲            │                  │      σ = h_s(ẑ), N(0,σ²) for ỹ, factorized prior for ẑ) ─► rate
          └── Adam ◄───┴──── ∇y  J ◄──────┴─ ·γ'_Q ─ g_s ─► x̃ ─► λ·255²·MSE(x, x̃) ─► distortion
    every few steps: the exact cost of round(y) (bits under the integer coding tables, 8-bit pixels);
    the best y so far is kept (g_a's own y₀ included) and handed to the latent codec

Only the encoder changes.  The file format, the decoder and its speed stay the same, and a refined file
decodes identically on every machine like any other (the decoder only sees integers).  Since g_a's own
latents are candidates too, refinement never returns latents whose exact cost J is higher than the
plain encoder's.  The search is random but seeded, so the same input on the same machine gives the same
file.  Cost: each step is a forward and backward pass through g_s and the hyperprior, about as much as
a plain encode (``benchmarks/refine_kodak.py`` measures seconds and the BD-rate it buys: 50 steps, about
20 s instead of 0.5 s per Kodak photo on two CPU cores, -14.6 % BD-rate in PSNR for bmshj2018-hyperprior,
-3.8 % for su2020-rnn-hyperprior).

Each model family states its cost J in a *problem* (``model.refine_problem(x, real, quality)``: ``relaxed``,
``exact``, ``lr``); the search, the tiling and the keeping of the best are shared.  The transform codecs'
problem is :class:`TransformProblem` below.  The scalable recurrent codec's (:mod:`lic.models.scalable`)
stacks the latents of all its K layers along the channels and lowers its training loss
Σ_k λ_k·D_k + R over them, through the unrolled decoder and the float twin of its recurrent
hyper-synthesis; the exact cost runs the coder's integer scale path.

Memory: the backward pass keeps g_s's feature maps, so latents are refined tile by tile
(``TILE`` latents square, with ``HALO`` latents of context that are refined with the tile but not kept;
tile edges fall on the hyper-latent grid), and the last word is a whole-image comparison of the exact
cost of the merged latents against g_a's own.
"""

from __future__ import annotations

import torch

from .base import onednn_while_coding

TILE = 48  # latents (768 pixels) per tile side: a Kodak photo is one tile
HALO = 4  # latents of context on each side (64 pixels), a multiple of the hyperprior's 4
LR = 0.02  # Adam step on y, in quantization bins (0.005, 0.01, 0.02 tried on training crops); the models' refine_lr
TAU_START, TAU_END, ANNEAL = 0.5, 0.05, 0.7  # SGA temperature: linear decay over the first 70 % of steps
CHECK_EVERY = 5  # exact cost of round(y) every CHECK_EVERY steps (and after the last)
MIN_SIDE = 16  # images narrower than one latent are coded as g_a gives them (and MS-SSIM needs some size)


def _sga(y: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Stochastic Gumbel annealing: round y down or up at random, softly at temperature tau."""
    down = torch.floor(y).detach()
    r = (y - down).clamp(1e-4, 1 - 1e-4)
    logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)]) / tau
    u = torch.rand(logits.shape, generator=gen).to(y.device).clamp_min(1e-9)
    w = torch.softmax(logits - torch.log(-torch.log(u)), dim=0)
    return down + w[1]


class TransformProblem:
    """The cost J of latents for one block of the padded image, relaxed (differentiable) and exact: the
    model's own training objective (``rd_cost``) over the block's real pixels (padding left out).

    A refinable model's ``refine_problem(x, real, quality)`` returns such an object (``relaxed(y, y_soft)``
    -> a differentiable scalar, ``exact(y)`` -> float, ``lr``: the search's step size); this one serves the
    one-shot transform codecs, the scalable recurrent codec has its own (:mod:`lic.models.scalable`)."""

    def __init__(self, model, x: torch.Tensor, real: tuple[int, int], quality: int, exact: bool = False):
        self.m, self.q, self.exact_synthesis = model, quality, exact
        self.h, self.w = real  # rows and columns of the block that are image, not padding
        self.x = x[..., : self.h, : self.w]
        self.pixels = self.h * self.w
        self.inv_gain = model._gain(quality, inverse=True).detach()
        self.lr = model.refine_lr(quality)

    def relaxed(self, y: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
        bits = self.m.latent.relaxed_bits(y, y_soft)
        x_hat = self.m.g_s(y_soft * self.inv_gain)[..., : self.h, : self.w]
        return self.m.rd_cost(self.x, x_hat, bits / self.pixels, self.q)

    @torch.no_grad()
    def exact(self, y: torch.Tensor) -> float:
        """J of the latents the coder would write for ``y``: table bits, and the decoder's 8-bit pixels."""
        bits = self.m.latent.table_bits(y)
        x_hat = self.m._synthesize(torch.round(y), self.q, (self.h, self.w), self.exact_synthesis)
        x_hat = (torch.floor(x_hat * 255 + 0.5) / 255).to(self.x.device, torch.float32)  # as imageio.from_tensor
        return float(self.m.rd_cost(self.x, x_hat, bits / self.pixels, self.q))


def _refine_block(problem, y0: torch.Tensor, steps: int, gen: torch.Generator, onednn: bool) -> torch.Tensor:
    """``onednn``: whether the decoder convolves with oneDNN (``base.coding``); ``problem.exact`` must, too."""
    best_y, best_j = y0, problem.exact(y0)
    y = y0.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=problem.lr)
    anneal = max(1, int(ANNEAL * steps))
    for t in range(1, steps + 1):
        tau = max(TAU_END, TAU_START + (TAU_END - TAU_START) * t / anneal)
        torch.backends.mkldnn.enabled = True  # the search may use any kernels (oneDNN is faster here);
        try:  # exact() keeps the decoder's own, so the costs compared are those of the decoded pixels
            loss = problem.relaxed(y, _sga(y, tau, gen))
            (y.grad,) = torch.autograd.grad(loss, [y])  # only y's gradient: the model's own stay untouched
        finally:
            torch.backends.mkldnn.enabled = onednn
        opt.step()
        if t % CHECK_EVERY == 0 or t == steps:
            j = problem.exact(y.detach())
            if j < best_j:
                best_y, best_j = y.detach().clone(), j
    return best_y


def refine_latents(model, x: torch.Tensor, y0: torch.Tensor, quality: int, steps: int, size: tuple[int, int],
                   seed: int = 0, progress=None, exact: bool = False) -> torch.Tensor:
    """Latents for the padded image ``x`` (1×3×H×W) at least as good as ``y0`` = g_a(x)·γ_Q by the exact
    cost J; ``size`` = the image's real (height, width).  ``progress(n)`` is called after each tile's steps.
    ``exact``: J is measured on the pixels of the exact synthesis (``compress(..., exact=True)``)."""
    kind = {"exact": True} if exact else {}  # only the transform codecs have an exact synthesis
    if steps <= 0 or min(size) < MIN_SIDE:
        return y0
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    lh, lw = y0.shape[-2:]
    previous = torch.backends.mkldnn.enabled
    onednn = onednn_while_coding(model)
    torch.backends.mkldnn.enabled = onednn  # as in decoding (lic.models.base.coding)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach().clone()  # copies made here: tensors from inference mode cannot enter autograd
            y0 = y0.detach().clone()
            y = y0.clone()
            for r0 in range(0, lh, TILE):
                for c0 in range(0, lw, TILE):
                    r1, c1 = min(r0 + TILE, lh), min(c0 + TILE, lw)
                    rs, cs = slice(max(0, r0 - HALO), min(lh, r1 + HALO)), slice(max(0, c0 - HALO), min(lw, c1 + HALO))
                    px_r, px_c = slice(16 * rs.start, 16 * rs.stop), slice(16 * cs.start, 16 * cs.stop)
                    real = (max(0, min(height, px_r.stop) - px_r.start), max(0, min(width, px_c.stop) - px_c.start))
                    problem = model.refine_problem(x[..., px_r, px_c], real, quality, **kind)
                    if problem.pixels > 0:  # else the tile is all padding: g_a's latents stay
                        block = _refine_block(problem, y0[..., rs, cs], steps, gen, onednn)
                        y[..., r0:r1, c0:c1] = block[..., r0 - rs.start:r1 - rs.start, c0 - cs.start:c1 - cs.start]
                    if progress is not None:
                        progress(steps)
            whole = model.refine_problem(x, (height, width), quality, **kind)
            if len(range(0, lh, TILE)) * len(range(0, lw, TILE)) > 1 and whole.exact(y) >= whole.exact(y0):
                return y0
    finally:
        torch.backends.mkldnn.enabled = previous
    return y


def blocks(model, height: int, width: int) -> int:
    """How many tiles ``refine_latents`` refines one after the other for an image of this size with this
    model (for progress bars: each reports its steps)."""
    lh, lw = (-(-n // model.PAD) * model.PAD // 16 for n in (height, width))
    return -(-lh // TILE) * -(-lw // TILE)


__all__ = ["refine_latents", "blocks", "TransformProblem"]
