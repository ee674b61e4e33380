"""Attention autoencoder with GDN residual blocks and sub-pixel up-sampling (issue 6), trained
for perceptual quality: rate + λ·(weighted MAE, MS-SSIM, LPIPS), or MSE.

The seed design (issue 6) is an attention autoencoder: GDN residual blocks, two simplified
attention modules, strided convolutions down and sub-pixel convolutions up, rounding with uniform
noise in training, a factorized prior, and a perceptual loss.  Its blocks are those of Cheng, Sun,
Takeuchi and Katto: residual blocks and sub-pixel up-sampling from "Deep Residual Learning for
Image Compression" (CVPR Workshops 2019, CLIC), and the attention module of "Learned Image
Compression with Discretized Gaussian Mixture Likelihoods and Attention Modules" (CVPR 2020),
here simplified to one convolution and a sigmoid, as the issue asks.  The seed's entropy model,
the factorized prior, is ``entropy="factorized"`` (model name ``attention-factorized``); the
scale hyperprior of Ballé et al. 2018 is the option (``entropy="hyperprior"``,
``attention-hyperprior``).  Both are latent codecs from :mod:`lic.latent_codecs` (the
hyperprior is the very one of :mod:`lic.models.hyperprior`); gain vectors (as in
:mod:`lic.models.hyperprior`) give one network for every rate.

Data flow (Q = quality level, γ_Q / γ'_Q = learned per-channel gain / inverse gain)::

    g_a:  x ─c5/2─GDN─R─c5/2─GDN─R─A─c5/2─GDN─R─c5/2─A─c3 (bottleneck)─► y        (16× down)

          y·γ_Q ─round (+U(-½,½) in training)─► ŷ ─·γ'_Q─► g_s ─► x̂
                     │  factorized:  ŷ coded with the factorized prior          (1 chunk)
                     │  hyperprior:  |y| ─h_a─► z ─round─► ẑ (factorized prior)  (chunk 1)
                     │               ẑ ─h_s (integer network)─► scale index ─► ŷ with N(0,σ²)⋆U (chunk 2)

    g_s:  ŷ ─c3─A─R'─U─R'─U─A─R'─U─R'─S(→3)─► x̂                                   (16× up)

    R  = residual block:  x + GDN(c3(GDN(c3(x))))        R' = the same with inverse GDN
    A  = simplified attention:  x + x ⊙ sigmoid(c3(x))   (a convolution and a sigmoid make the mask)
    U  = up-sampling block:  IGDN(c3(IGDN(S(x)))) + S₁(x),  S = c3 to 4·C channels + pixel shuffle ×2,
         S₁ = the same with a 1×1 convolution (the skip connection)
    c5/2 = 5×5 convolution, stride 2;  c3 = 3×3, stride 1

Widths: N channels throughout, M for ŷ.  With ``wide_bottleneck=True`` the blocks at the latent's own
resolution (g_a's last c5/2, A and c3; g_s's c3, A and R' before the first U) are M wide instead: they
cost little (1/256 of the pixels), and the model then contains Ballé's transforms exactly, so that it
can start from trained bmshj2018-hyperprior weights (``tools/attention_from_hyperprior.py``).

Loss (:meth:`AttentionCodec.training_loss`, picked up by ``lic train``)::

    L = rate_weight · bpp + λ_Q · D
    D = mae·MAE + ms_ssim·(1 − MS-SSIM) + lpips·LPIPS + chroma·MAE_CbCr     (loss="mix", pixels in [0, 1])
    D = 255²·MSE                                           (loss="mse"; λ as the hyperprior's)

The default mix 0.16·MAE + 0.84·(1 − MS-SSIM) is the MS-SSIM + ℓ1 mix of Zhao, Gallo, Frosio
and Kautz ("Loss Functions for Image Restoration with Neural Networks", IEEE TCI 2017).
The weighted MAE term is that ℓ1 share; on whole crops their Gaussian weighting of ℓ1 averages out.
``MAE_CbCr`` is the mean absolute error of the JFIF Cb and Cr planes (weight 0 by default): every
run with the mix alone lost most of its colour (docs/attention.md), and this term charges for
that without touching luma.  LPIPS (weight 0 by default) needs local backbone weights, see
:mod:`lic.perceptual`; when they are missing training stops at once with a one-line message
naming the path, and every other term works without them.  Default λ (``LAMBDAS_MIX``) follow
the usual MS-SSIM-optimized ladder; the middle one aims at about 0.23 bpp on Kodak (to be checked once trained).

Inputs of any size are replicate-padded to a multiple of 16 (factorized) or 64 (hyperprior)
and cropped back.  Determinism as for the other models: the coder only sees integers and
integer tables; the hyperprior's scales come from the integer copy of h_s; the synthesis runs
in float with oneDNN's convolutions (:func:`lic.models.base.coding`), or, in files written with
``--exact``, in exact arithmetic (:mod:`lic.layers.exact`: the same pixels on every machine).  forward(), compress() and
decompress() are those of every one-shot transform codec (:class:`lic.models.transform.TransformCodec`).
"""

from __future__ import annotations

import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..latent_codecs import FactorizedLatentCodec, HyperpriorLatentCodec
from ..latent_codecs.hyperprior import conv
from ..layers import GDN, IGDN
from ..metrics import YCBCR
from .transform import TransformCodec
from .hyperprior import LAMBDAS as LAMBDAS_MSE

ENTROPY_MODELS = ("factorized", "hyperprior")
LOSSES = ("mix", "mse")
#: λ per quality level for loss="mix" (the MS-SSIM-optimized ladder of Ballé et al.'s models)
LAMBDAS_MIX = (2.4, 4.58, 8.73, 16.64, 31.73)


# -- building blocks -----------------------------------------------------------------------
class ResidualGDN(nn.Module):
    """x + GDN(conv3×3(GDN(conv3×3(x)))); inverse GDN in the decoder."""

    exact_safe = True  # forward only adds its children's outputs (lic.layers.exact)

    def __init__(self, ch: int, inverse: bool = False):
        super().__init__()
        self.body = nn.Sequential(conv(ch, ch, 3, 1), GDN(ch, inverse=inverse), conv(ch, ch, 3, 1),
                                  GDN(ch, inverse=inverse))

    def forward(self, x):
        return x + self.body(x)


class SimplifiedAttention(nn.Module):
    """x + x ⊙ sigmoid(conv3×3(x)): a convolution and a sigmoid make a mask of the feature map."""

    exact = False  # set on exact copies (lic.layers.exact): the sigmoid from correctly rounded operations

    def __init__(self, ch: int):
        super().__init__()
        self.mask = conv(ch, ch, 3, 1)

    def forward(self, x):
        if self.exact:
            from ..layers.exact import sigmoid

            return x + x * sigmoid(self.mask(x))
        return x + x * torch.sigmoid(self.mask(x))


def subpixel(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    """Sub-pixel convolution: conv to 4·cout channels, then pixel shuffle ×2."""
    return nn.Sequential(nn.Conv2d(cin, 4 * cout, k, padding=k // 2), nn.PixelShuffle(2))


class UpBlock(nn.Module):
    """IGDN(conv3×3(IGDN(subpixel(x)))) + subpixel₁ₓ₁(x)."""

    exact_safe = True  # forward only adds its children's outputs (lic.layers.exact)

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(subpixel(cin, cout), IGDN(cout), conv(cout, cout, 3, 1), IGDN(cout))
        self.skip = subpixel(cin, cout, 1)

    def forward(self, x):
        return self.body(x) + self.skip(x)


def chroma_mae(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of the Cb and Cr planes of two N×3×H×W RGB batches (any one scale)."""
    rows = torch.as_tensor(YCBCR[1:], dtype=x.dtype, device=x.device)  # the JFIF Cb, Cr rows
    return torch.einsum("kc,nchw->nkhw", rows, x_hat - x).abs().mean()


# -- the model ------------------------------------------------------------------------------------
class AttentionCodec(TransformCodec):
    name = "attention-factorized"
    TILE, HALO_A, HALO_S = 1024, 96, 9  # coding tiles (TransformCodec): the residual blocks see far
    #: trainable names and the constructor arguments they stand for (``lic train --model NAME``)
    variants = {"attention-factorized": {"entropy": "factorized"}, "attention-hyperprior": {"entropy": "hyperprior"}}

    def __init__(self, entropy: str = "factorized", N: int = 128, M: int = 192, hyper_N: int | None = None,
                 lambdas=None, loss: str = "mix", mae: float = 0.16, ms_ssim: float = 0.84, lpips: float = 0.0,
                 lpips_weights=None, rate_weight: float = 1.0, chroma: float = 0.0,
                 wide_bottleneck: bool = False):
        super().__init__()
        if entropy not in ENTROPY_MODELS:
            raise ValueError(f"unknown entropy model '{entropy}' (choose from {', '.join(ENTROPY_MODELS)})")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
        if min(mae, ms_ssim, lpips, chroma) < 0 or rate_weight <= 0:
            raise ValueError("loss weights must be non-negative and rate_weight positive")
        if loss == "mix" and mae + ms_ssim + lpips + chroma <= 0:
            raise ValueError("loss 'mix' needs a positive weight for mae, ms_ssim, lpips or chroma")
        if N < 1 or M < 1:
            raise ValueError("widths N and M must be positive")
        self.entropy, self.N, self.M = entropy, int(N), int(M)
        self.wide_bottleneck = bool(wide_bottleneck)
        B = self.M if self.wide_bottleneck else self.N  # width of the blocks at the latent's resolution
        self.hyper_N = int(hyper_N or N)
        self.name = f"attention-{entropy}"
        self.loss_kind = loss
        self.weights = {"mae": float(mae), "ms_ssim": float(ms_ssim), "lpips": float(lpips),
                        "chroma": float(chroma)}
        self.lpips_weights = lpips_weights
        self.rate_weight = float(rate_weight)
        if lambdas is None:
            lambdas = LAMBDAS_MIX if loss == "mix" else LAMBDAS_MSE
        self.lambdas = tuple(float(v) for v in lambdas)
        if not self.lambdas or min(self.lambdas) <= 0:
            raise ValueError("lambdas must be positive, one per quality level")
        self.qualities = list(range(1, len(self.lambdas) + 1))
        self.default_quality = (len(self.lambdas) + 1) // 2

        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), ResidualGDN(N),
            conv(N, N), GDN(N), ResidualGDN(N), SimplifiedAttention(N),
            conv(N, N), GDN(N), ResidualGDN(N),
            conv(N, B), SimplifiedAttention(B),
            conv(B, M, 3, 1))
        self.g_s = nn.Sequential(
            conv(M, B, 3, 1), SimplifiedAttention(B), ResidualGDN(B, inverse=True),
            UpBlock(B, N), ResidualGDN(N, inverse=True),
            UpBlock(N, N), SimplifiedAttention(N), ResidualGDN(N, inverse=True),
            UpBlock(N, N), ResidualGDN(N, inverse=True),
            subpixel(N, 3))
        self.latent = FactorizedLatentCodec(M) if entropy == "factorized" else HyperpriorLatentCodec(M, self.hyper_N)
        self.PAD = 16 * self.latent.multiple
        self.init_gains()
        self._lpips = None  # the frozen LPIPS network, loaded on the first training step that needs it

    def config(self) -> dict:
        cfg = {"arch": "AttentionCodec", "entropy": self.entropy, "N": self.N, "M": self.M, "hyper_N": self.hyper_N,
               "lambdas": list(self.lambdas), "loss": self.loss_kind, "mae": self.weights["mae"],
               "ms_ssim": self.weights["ms_ssim"], "lpips": self.weights["lpips"], "chroma": self.weights["chroma"],
               "rate_weight": self.rate_weight, "wide_bottleneck": self.wide_bottleneck}
        if self.lpips_weights:
            cfg["lpips_weights"] = self.lpips_weights
        return cfg

    def __setattr__(self, name, value):
        if name == "_lpips":  # never a submodule: not in the weights, the optimizer or the digest
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def training_quality(self, rng=None) -> int:
        return (rng or random).randint(1, len(self.lambdas))

    def prepare_training(self) -> None:
        """Called by ``lic train`` before the first step: a missing LPIPS backbone stops training at once."""
        if self.loss_kind == "mix" and self.weights["lpips"]:
            self.lpips_net()

    def lpips_net(self, device=None):
        """The frozen LPIPS network (ModelError with the path when its weights are missing)."""
        if self._lpips is None:
            from ..perceptual import LPIPS

            self._lpips = LPIPS.from_files(self.lpips_weights)
        if device is not None and self._lpips.shift.device != torch.device(device):
            self._lpips = self._lpips.to(device)
        return self._lpips

    def distortion_terms(self, x: torch.Tensor, x_hat: torch.Tensor) -> dict:
        """Each distortion term with a non-zero weight (pixels in [0, 1])."""
        x, x_hat = x.float(), x_hat.float()
        if self.loss_kind == "mse":
            return {"mse": F.mse_loss(x_hat, x)}
        from .recurrent import _ms_ssim

        terms = {}
        if self.weights["mae"]:
            terms["mae"] = (x_hat - x).abs().mean()
        if self.weights["ms_ssim"]:
            terms["ms_ssim"] = 1 - _ms_ssim(x_hat, x)
        if self.weights["lpips"]:
            terms["lpips"] = self.lpips_net(x.device)(x_hat.clamp(0, 1), x)
        if self.weights["chroma"]:
            terms["chroma"] = chroma_mae(x, x_hat)
        return terms

    def distortion(self, terms: dict) -> torch.Tensor:
        if self.loss_kind == "mse":
            return 255.0 ** 2 * terms["mse"]
        return sum(self.weights[k] * v for k, v in terms.items())

    def rd_cost(self, x: torch.Tensor, x_hat: torch.Tensor, bpp: torch.Tensor, quality: int) -> torch.Tensor:
        """rate_weight · bpp + λ_q · D (module docstring): the training loss, and what encoder-side
        refinement (:mod:`lic.models.refine`) minimizes for one image."""
        return self.rate_weight * bpp + self.lambdas[quality - 1] * self.distortion(self.distortion_terms(x, x_hat))

    def refine_lr(self, quality: int) -> float:
        """The latent search's step size at this quality: 0.01 bins up to λ = 8.7, then growing with λ
        (0.019, 0.036, 0.069 at the shipped model's q4-q6).  On two 512x384 training crops with the shipped
        attention-hyperprior, 50 steps (``python benchmarks/refine_step_size.py --model attention-hyperprior
        --lrs 0.005 0.01 0.02 0.05 0.1 --qualities 1 3 4 6``): 0.01 lowered the cost most at q1 and q3,
        0.01-0.05 were within 0.1 % of each other at q4, and 0.05-0.1 did best at q6 (0.02 1.8 % and 0.01
        3.4 % worse); refinement's default, 0.02, had been used at every quality before."""
        return 0.01 * max(1.0, self.lambdas[quality - 1] / 8.7)

    def training_loss(self, x: torch.Tensor, out: dict, quality: int):
        """(loss, bpp, mse): :meth:`rd_cost` of a batch."""
        x = x.float()
        x_hat = out["x_hat"].float()
        n_pix = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = sum(torch.log2(l.float()).sum() for l in out["likelihoods"].values()) / (-n_pix)
        loss = self.rd_cost(x, x_hat, bpp, quality)
        mse = F.mse_loss(x_hat.detach().clamp(0, 1), x)
        return loss, bpp, mse
