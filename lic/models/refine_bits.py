"""Encoder-side search for the bits of the progressive binary codec (``lic compress --refine N`` with
``toderici2017-rnn`` and ``toderici2017-rnn-msssim``).

The encoder E proposes the bits of iteration t as the signs of its binarizer's activations; it is trained
to do well *on average*, and it is small.  For the one image at hand the encoder can look for bits that
serve it better, as :mod:`lic.models.refine` does for quantized latents.  Bits are binary, so the search
works on the binarizer's activations u (pre-tanh) and sends sign(u); gradients pass through tanh
(straight-through, as in training).  It is greedy, one iteration after the other, because every prefix
of a progressive file is an image someone may decode: iteration t's bits are chosen to lower

    J_t(b) = D_dB(x, x̂_{t-1} + D_t(b)) + k · bits_t(b) / pixels       (k = SLOPE dB per bpp)

where D_dB is 10·log10(MSE) (models trained for MSE or L1) or 10·log10(1 − MS-SSIM) (models trained for
MS-SSIM; MSE on pieces too thin for SSIM's window): the iteration's own distortion in dB, traded against the bits the context model will spend on
it (a rate–distortion cost at a slope near the codec's own curve).  Then the decoder's state and x̂_t
follow from the chosen bits exactly as the decoder computes them, and the encoder sees the new residual::

    for t = 1 .. n:
        r_{t-1} = x − x̂_{t-1} ─E_t─► u₀ ─► u ─ Adam on J_t, N steps ─► b_t = sign(best u)
                                                   │ D_t from the decoder's state after t−1 (tile by tile)
                                                   └ bits_t: the float context model, earlier bits known
        keep b_t only if its exact cost (the integer tables' bits, the decoder's pixels) beats sign(u₀)
        x̂_t = x̂_{t-1} + D_t(b_t)    (the decoder's own step: its state moves on with the bits sent)

Only the encoder changes: the file format, the decoder and its speed are the same, every prefix still
decodes, and since the encoder's own bits are always a candidate, no iteration's exact cost J_t is higher
than the plain encoder's bits would give from the same state.  The search has no randomness: the same
input on the same machine gives the same file.  Cost: each step is a forward and backward pass through one
decoder iteration, about twice a plain iteration's encode (0.27 s for a 768×512 photo on two CPU cores: 20 steps
took an 8-iteration encode from 2.2 s to 44.8 s, README); ``benchmarks/recurrent_kodak.py --refine N`` measures
what it buys (24 Kodak images, 20 steps: −8.5 % BD-rate in PSNR).

Memory: the backward pass keeps the decoder's feature maps, so large images are searched in tiles of
``TILE`` latents square (``HALO`` latents of context around each, with the decoder state cropped to them,
far more than the decoder's reach of about 3 latents per iteration); only the core's bits are changed and
only its pixels and bits are counted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .recurrent_trunk import run_encoder

SLOPE = 10.0  # k: dB per bpp (1, 3, 10, 20 tried on training crops, README)
LR = 0.01  # Adam step on the binarizer's activations (0.005, 0.01, 0.02, 0.05 tried on training crops, README)
TILE = 48  # latents (768 pixels) per tile side: a Kodak photo is one tile
HALO = 4  # latents of context on each side (64 pixels)
MIN_SSIM_SIDE = 16  # pixels


def _hard(u: torch.Tensor) -> torch.Tensor:
    return torch.where(u >= 0, 1.0, -1.0).to(u.dtype)


def _crop_state(s, rows: slice, cols: slice, scale: int):
    """A decoder cell's state (a tensor, a tuple of them, or None) cropped to latent ``rows``/``cols``; the
    state lives at ``scale`` times the latent resolution."""
    if s is None:
        return None
    if isinstance(s, tuple):
        return tuple(_crop_state(v, rows, cols, scale) for v in s)
    return s[..., rows.start * scale:rows.stop * scale, cols.start * scale:cols.stop * scale]


class _Iteration:
    """What the search for iteration ``t`` starts from: the image, the reconstruction and decoder state
    after t−1, the bits of the earlier iterations and the gain (scaled reconstruction)."""

    def __init__(self, model, xp, size, x_hat, states, history, gain, t):
        self.m, self.xp, self.size, self.x_hat, self.states = model, xp, size, x_hat, states
        self.history, self.gain, self.t = history, gain, t
        self.msssim = model.loss_kind in ("ms-ssim", "log-ms-ssim")

    def distortion_db(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """In dB: MS-SSIM's for a model trained for it (down to SSIM on small crops), else MSE's, also for
        pieces thinner than MIN_SSIM_SIDE pixels (where SSIM's window does not fit)."""
        if self.msssim and min(x.shape[-2:]) >= MIN_SSIM_SIDE:
            from .recurrent import _ms_ssim

            return 10 * torch.log10((1 - _ms_ssim(x_hat + 0.5, x + 0.5)).clamp_min(1e-10))
        return 10 * torch.log10(F.mse_loss(x_hat.clamp(-0.5, 0.5), x).clamp_min(1e-10))

    def search_tile(self, u0: torch.Tensor, current: torch.Tensor, rows: slice, cols: slice, steps: int):
        """Better bits for the core ``rows`` × ``cols`` (latent units) of ``current`` (the iteration's bits
        so far); returns the core's bits."""
        m, (h, w) = self.m, self.xp.shape[-2:]
        lh, lw = h // 16, w // 16
        rs = slice(max(0, rows.start - HALO), min(lh, rows.stop + HALO))
        cs = slice(max(0, cols.start - HALO), min(lw, cols.stop + HALO))
        cy, cx = slice(rows.start - rs.start, rows.stop - rs.start), slice(cols.start - cs.start, cols.stop - cs.start)
        core = torch.zeros_like(current[..., rs, cs])
        core[..., cy, cx] = 1
        # the core's real pixels (padding left out), in the region's pixel coordinates
        real_h = max(0, min(self.size[0], 16 * rows.stop) - 16 * rows.start)
        real_w = max(0, min(self.size[1], 16 * cols.stop) - 16 * cols.start)
        if real_h * real_w == 0:
            return current[..., rows, cols]
        py, px = slice(16 * cy.start, 16 * cy.start + real_h), slice(16 * cx.start, 16 * cx.start + real_w)
        prs, pcs = slice(16 * rs.start, 16 * rs.stop), slice(16 * cs.start, 16 * cs.stop)
        x = self.xp[..., prs, pcs]
        x_prev = None if self.x_hat is None else self.x_hat[..., prs, pcs]
        gain = None if self.gain is None else self.gain[..., prs, pcs]
        states = [_crop_state(s, rs, cs, 2 ** i) for i, s in enumerate(self.states)]
        hist = [b[..., rs, cs] for b in self.history]
        fixed = current[..., rs, cs] * (1 - core)
        u = u0[..., rs, cs].detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=LR)
        best, best_bits = math.inf, current[..., rs, cs]
        for step in range(steps + 1):
            soft, sent = torch.tanh(u), fixed + core * _hard(u)
            b = sent + core * (soft - soft.detach())  # the sent bits (±1 exactly); gradients through tanh
            out = m._decode_step(b, list(states), x_prev, gain)
            lik = m.context.likelihoods(torch.stack(hist + [b], 1))[:, -1]
            bits = -(torch.log2(lik) * core).sum()
            j = self.distortion_db(out[..., py, px], x[..., py, px]) + SLOPE * bits / (real_h * real_w)
            if float(j.detach()) < best:  # the forward pass sees the hard bits: this is their cost
                best, best_bits = float(j.detach()), sent
            if step == steps:
                break
            (u.grad,) = torch.autograd.grad(j, [u])
            opt.step()
        return best_bits[..., cy, cx]

    @torch.no_grad()
    def exact_cost(self, b: torch.Tensor, buckets) -> float:
        """J_t of the bits the coder would write: the integer tables' bits and the decoder's own step."""
        h, w = self.size
        out = self.m._decode_step(b, list(self.states), self.x_hat, self.gain)
        bits = self.m.context.iteration_table_bits(buckets, self.t, b[0])
        return float(self.distortion_db(out[..., :h, :w], self.xp[..., :h, :w])) + SLOPE * bits / (h * w)


def refine_bits(model, xp: torch.Tensor, n: int, steps: int, size: tuple[int, int], progress=None):
    """The codec's encoding loop (``RecurrentCodec._run`` with hard bits) with each iteration's bits searched
    for: (bits, reconstructions), one per iteration, as the decoder computes them.  ``xp``: the padded,
    centred image; ``size``: the image's real (height, width); ``progress(n)``: told of each tile's steps."""
    lh, lw = (v // 16 for v in xp.shape[-2:])
    enc_states, dec_states = [None] * 3, [None] * 4
    x_hat, bits, x_hats = None, [], []
    with torch.inference_mode(False), torch.enable_grad():
        xp = xp.detach().clone()  # tensors made in inference mode cannot enter autograd
        buckets = model.context._buckets(lh, lw)  # (nor be updated in place outside it)
        for t in range(n):
            with torch.no_grad():
                gain = model._gain(x_hat, t)
                r = xp if x_hat is None else xp - x_hat
                u0 = model.binarizer(run_encoder(model, r if gain is None else r * gain, enc_states))
            plain = _hard(u0)
            it = _Iteration(model, xp, size, x_hat, dec_states, bits, gain, t)
            b = plain.clone()
            for r0 in range(0, lh, TILE):
                for c0 in range(0, lw, TILE):
                    rows, cols = slice(r0, min(lh, r0 + TILE)), slice(c0, min(lw, c0 + TILE))
                    b[..., rows, cols] = it.search_tile(u0, b, rows, cols, steps)
                    if progress is not None:
                        progress(steps)
            if not torch.equal(b, plain) and it.exact_cost(b, buckets) >= it.exact_cost(plain, buckets):
                b = plain
            with torch.no_grad():
                x_hat = model._decode_step(b, dec_states, x_hat, gain)
            buckets.add_iteration(t, b[0].cpu().to(torch.int64))
            bits.append(b)
            x_hats.append(x_hat)
    return bits, x_hats


def blocks(height: int, width: int) -> int:
    """Tiles searched one after the other per iteration for an image of this size (for progress bars)."""
    def tiles(pixels: int) -> int:
        latents = -(-pixels // 16)
        return -(-latents // TILE)

    return tiles(height) * tiles(width)


__all__ = ["refine_bits", "blocks", "SLOPE", "LR"]
