"""One-shot transform codecs: an analysis transform, a latent codec, a synthesis transform, and
per-quality gain vectors (Cui et al., "Asymmetric Gained Deep Image Compression", CVPR 2021) so
that one network serves every quality level.

Data flow (Q = quality level, γ_Q / γ'_Q = learned per-channel gain / inverse gain)::

    x ─pad─g_a─► y·γ_Q ─► latent codec ─► ŷ ─·γ'_Q─► g_s ─crop─► x̂
                          (lic.latent_codecs: chunks of bytes ⇄ ŷ, likelihoods in training)

The contract shared by the Ballé 2018 scale hyperprior (:mod:`lic.models.hyperprior`) and the
attention autoencoder (:mod:`lic.models.attention`): a subclass builds ``g_a``, ``g_s``,
``latent`` and the gains (:meth:`init_gains`), and sets ``M``, ``PAD`` and ``lambdas``; this
class gives ``forward()`` for training and ``compress()`` / ``decompress()`` for bytes.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..container import PARAMS_EXACT_SYNTHESIS
from .base import CompressionModel, Compressed, check_synthesis, coding, pad_to
from .tiling import run_tiled


class TransformCodec(CompressionModel):
    PAD: int  # inputs are padded to a multiple of this (16 × the latent codec's own multiple)
    M: int  # latent channels
    # coding runs g_a and g_s on tiles of TILE × TILE pixels (lic.models.tiling) with HALO_A pixels /
    # HALO_S latents of context, at least the transforms' receptive radius (tested); part of the
    # decoder's arithmetic: changing them may move decoded pixels by float rounding, never the latents
    TILE: int = 768
    HALO_A: int = 32
    HALO_S: int = 2
    # training only (``lic train --mixed-quantization``): g_s sees round(y) through a straight-through
    # gradient, as the decoder will, while the rate term keeps additive noise (Minnen & Singh, ICIP 2020)
    mixed_quantization: bool = False
    refinable = True  # compress(..., refine=N) searches for better latents (lic.models.refine)
    onednn_while_coding = True  # on channels-last tensors its sums do not depend on the thread count (base.coding)

    def init_gains(self) -> None:
        """Gains start at (λ_Q / λ_mid)^½: finer quantization for a higher λ."""
        mid = self.lambdas[len(self.lambdas) // 2]
        init = torch.tensor([0.5 * math.log(l / mid) for l in self.lambdas]).unsqueeze(1).repeat(1, self.M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())

    def _gain(self, quality: int, inverse: bool = False) -> torch.Tensor:
        g = (self.log_inv_gain if inverse else self.log_gain)[quality - 1]
        return torch.exp(g).view(1, -1, 1, 1)

    # -- training / estimation -----------------------------------------------------------
    def forward(self, x: torch.Tensor, quality: int) -> dict:
        """Likelihoods for the rate term; in eval mode, of the tables the coder will use.

        Under autocast (bf16 training on GPU) only the transforms run in low precision:
        the latent codec, the likelihoods and so the rate term are computed in fp32.
        """
        self.check_quality(quality)
        h, w = x.shape[-2:]
        y = self.g_a(pad_to(x, self.PAD)).float() * self._gain(quality)
        with torch.autocast(x.device.type, enabled=False):
            y_hat, likelihoods = self.latent(y)
        if self.training and self.mixed_quantization:
            y_hat = y + (torch.round(y) - y).detach()
        x_hat = self.g_s(y_hat * self._gain(quality, inverse=True))
        return {"x_hat": x_hat[..., :h, :w], "likelihoods": likelihoods}

    def rd_cost(self, x: torch.Tensor, x_hat: torch.Tensor, bpp: torch.Tensor, quality: int) -> torch.Tensor:
        """The objective the model was trained on, bpp + λ_Q · 255² · MSE (``lic train``'s default loss);
        encoder-side refinement (:mod:`lic.models.refine`) minimizes it for one image."""
        return bpp + self.lambdas[quality - 1] * 255 ** 2 * torch.mean((x_hat.float() - x.float()) ** 2)

    def refine_lr(self, quality: int) -> float:
        """Step size of the latent search (:mod:`lic.models.refine`) at this quality, for the MSE objective:
        0.02 bins up to λ = 0.009, then growing as λ^(2/3) (0.1 at λ = 0.1).  On four 512x384 training crops
        with bmshj2018-hyperprior's weights (50 steps), 0.02 lowered the cost most at its three lower
        qualities (0.05 and 0.1 tried), 0.034-0.05 at q4, 0.058-0.1 at q5 and 0.1 at q6 (0.2 tried)."""
        from .refine import LR

        return LR * max(1.0, self.lambdas[quality - 1] / 0.009) ** (2 / 3)

    def refine_problem(self, x: torch.Tensor, real: tuple[int, int], quality: int, exact: bool = False):
        """The cost that ``compress(..., refine=N)`` lowers, for latents of the padded block ``x``; ``exact``:
        its exact cost is measured on the pixels of the exact synthesis (files made with ``exact=True``)."""
        from .refine import TransformProblem

        return TransformProblem(self, x, real, quality, exact)

    # -- coding tables ---------------------------------------------------------------------
    def tables_current(self) -> bool:
        return self.latent.tables_current()

    def update(self) -> None:
        self.latent.update()

    # -- coding ----------------------------------------------------------------------------
    exact_synthesis = True  # compress(..., exact=True): pixels the same on every machine (lic.layers.exact)

    @coding
    def compress(self, x: torch.Tensor, quality: int, reconstruct: bool = False, refine: int = 0,
                 progress=None, exact: bool = False) -> Compressed:
        """``refine``: steps of encoder-side latent search (:mod:`lic.models.refine`; 0 = g_a's latents as
        they are); ``progress(n)`` is told of each tile's steps.  The decoder is the same either way.
        ``exact``: the file asks for the exact synthesis (the header's params), and every decoder then
        gives the same pixels on any machine, for about 4x the decode time."""
        self.check_quality(quality)
        self.ensure_tables()
        dev = next(self.parameters()).device
        self._channels_last()
        xp = pad_to(x.to(dev), self.PAD)
        y = run_tiled(self.g_a, xp, self.TILE, self.HALO_A, down=16).contiguous()
        y = y * self._gain(quality)
        if refine > 0:
            from .refine import refine_latents

            y = refine_latents(self, xp, y, quality, refine, tuple(x.shape[-2:]), progress=progress,
                               exact=exact).contiguous()
        chunks, y_hat, bits = self.latent.compress(y)
        out = Compressed(chunks, params=PARAMS_EXACT_SYNTHESIS if exact else b"")
        out.extra["table_bits"] = bits
        if reconstruct:
            out.x_hat = self._synthesize(y_hat, quality, x.shape[-2:], exact)
        return out

    @coding
    def decompress(self, chunks: list[bytes], height: int, width: int, quality: int, params: bytes = b"") -> torch.Tensor:
        from ..errors import FormatError

        self.check_quality(quality)
        check_synthesis(params, self.name)
        if len(chunks) != self.latent.chunks:
            raise FormatError(f"corrupt .lic file: {self.name} expects {self.latent.chunks} data chunks, "
                              f"found {len(chunks)}")
        self.ensure_tables()
        hp, wp = -(-height // self.PAD) * self.PAD, -(-width // self.PAD) * self.PAD
        y_hat = self.latent.decompress(chunks, (1, self.M, hp // 16, wp // 16))
        return self._synthesize(y_hat, quality, (height, width), params == PARAMS_EXACT_SYNTHESIS)

    def _channels_last(self) -> None:
        """Coding runs the transforms on channels-last (NHWC) tensors with channels-last weights: there
        oneDNN's convolutions are fast and give the same sums at any thread count (``base.coding``,
        tested).  The latent codec still sees plain NCHW tensors.  Changes the weights' memory layout
        only, not values."""
        first = next(p for p in self.g_s.parameters() if p.dim() == 4)
        if not first.is_contiguous(memory_format=torch.channels_last):
            with torch.inference_mode(False):  # weights made in inference mode could not be trained any more
                self.g_a.to(memory_format=torch.channels_last)
                self.g_s.to(memory_format=torch.channels_last)

    def _exact_synthesis(self, quality: int):
        """ŷ -> padded pixels, g_s after the inverse gain in exact arithmetic, on the CPU (lic.layers.exact)."""
        from ..layers.exact import exact_copy, exp

        g_s = exact_copy(self.g_s).cpu()
        gain = exp(self.log_inv_gain[quality - 1].detach().cpu()).view(1, -1, 1, 1)
        return lambda y: g_s(y.double() * gain)

    def _synthesize(self, y_hat: torch.Tensor, quality: int, size, exact: bool = False) -> torch.Tensor:
        if exact:  # tiled as the float synthesis; with exact sums the tiling cannot show in the pixels (tested)
            x_hat = run_tiled(self._exact_synthesis(quality), y_hat.cpu().double(), self.TILE // 16, self.HALO_S,
                              up=16)
            return x_hat[..., : size[0], : size[1]].clamp(0, 1)
        dev = next(self.parameters()).device
        self._channels_last()
        y_hat = y_hat.to(dev) * self._gain(quality, inverse=True)
        x_hat = run_tiled(self.g_s, y_hat, self.TILE // 16, self.HALO_S, up=16)
        return x_hat[..., : size[0], : size[1]].clamp(0, 1).cpu()
