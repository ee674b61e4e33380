"""The scale hyperprior of Ballé, Minnen, Singh, Hwang, Johnston (ICLR 2018) as a latent codec:
two smaller codecs composed, the factorized prior for the hyper-latent ẑ and a Gaussian
conditional for ŷ whose scales ẑ predicts.  Two chunks: ẑ, then ŷ.

    y ─|·|─► h_a ─► z ─round─► ẑ ──────────────────────────────► chunk 1 (factorized prior)
    │                           └─► h_s (integer copy) ─► log σ ─► scale index
    └─round─► ŷ ───────────────────────────────────────────────► chunk 2 (N(0, σ²) ⋆ U(-½, ½))

h_a: 3×3 convolution then two 5×5 stride-2 convolutions with ReLU (4× down);
h_s: the mirror with transposed convolutions, predicting log σ per latent.

Determinism: the coder only sees integers.  In coding (and in eval-mode rate estimates) the scale
index of every latent comes from the fixed-point copy of h_s (:mod:`lic.layers.integer`), so the
encoder and a decoder on any machine, with any thread count, pick the same table.  The integer
copy carries a fingerprint of the float weights it was made from, so stale tables are rebuilt by
``update()`` (which ``compress`` calls itself) and never silently used.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..entropy import FactorizedPrior, GaussianConditional
from ..entropy.gaussian import gaussian_likelihood
from ..layers import IntegerNetwork
from ..layers.integer import fingerprint, log_scale_thresholds


def conv(cin, cout, k=5, s=2):
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def deconv(cin, cout, k=5, s=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class HyperpriorLatentCodec(nn.Module):
    multiple, chunks = 4, 2

    def __init__(self, M: int, N: int):
        super().__init__()
        self.N = N
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(), deconv(N, N), nn.ReLU(), conv(N, M, 3, 1))
        self.z_prior = FactorizedPrior(N)
        self.y_cond = GaussianConditional()
        self.h_s_int = IntegerNetwork(self._h_s_convs())
        self.register_buffer("scale_thresholds", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("h_s_int_of", torch.zeros(32, dtype=torch.uint8))

    def _h_s_convs(self):
        return [m for m in self.h_s if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]

    def integer_coded_layers(self) -> list[nn.Module]:
        """h_s runs as an integer copy when coding (its weights must stay storable: lic.layers.integer)."""
        return self._h_s_convs()

    # -- coding tables ---------------------------------------------------------------------
    def tables_current(self) -> bool:
        return (self.z_prior.tables_current() and self.y_cond.tables_current() and self.scale_thresholds.numel() > 0
                and bool(torch.equal(self.h_s_int_of.cpu(), fingerprint(self._h_s_convs()))))

    @torch.no_grad()
    def update(self) -> None:
        self.z_prior.update()
        self.y_cond.update()
        try:
            self.h_s_int.load_from(self._h_s_convs())
        except ValueError as exc:
            from ..errors import ModelError

            raise ModelError(f"cannot build the integer hyper-synthesis: {exc}") from None
        self.scale_thresholds = log_scale_thresholds()
        self.h_s_int_of = fingerprint(self._h_s_convs())

    def scale_indexes(self, z_hat: torch.Tensor) -> torch.Tensor:
        """Integer scale-table index of every latent, identical on every machine."""
        t = self.h_s_int(z_hat).to(torch.int64).contiguous()  # log σ in units of 2**-A_BITS
        return torch.bucketize(t, self.scale_thresholds.cpu(), right=True)

    # -- training / estimation ---------------------------------------------------------------
    def forward(self, y: torch.Tensor):
        """(ŷ, likelihoods of ŷ and ẑ).  In eval mode with current tables, ŷ's likelihoods are those of
        the scales the coder will really use.  Call it outside autocast: rates are computed in fp32."""
        z = self.h_a(torch.abs(y)).float()
        z_hat, z_lik = self.z_prior(z)
        if self.training or not self.tables_current():
            scale = torch.exp(self.h_s(z_hat))
        else:
            scale = self.y_cond.table_scales.cpu()[self.scale_indexes(z_hat)].to(y.device)
        y_hat, y_lik = self.y_cond(y, scale)
        return y_hat, {"y": y_lik, "z": z_lik}

    # -- coding ------------------------------------------------------------------------------------
    def _quantize(self, y: torch.Tensor):
        z_hat = torch.round(self.h_a(torch.abs(y)))
        return z_hat, self.scale_indexes(z_hat), torch.round(y)

    def compress(self, y: torch.Tensor):
        z_hat, indexes, y_hat = self._quantize(y)
        chunks = [self.z_prior.compress(z_hat), self.y_cond.compress(y_hat, indexes)]
        return chunks, y_hat, self.z_prior.table_bits(z_hat) + self.y_cond.table_bits(y_hat, indexes)

    # -- encoder-side search (lic.models.refine) ---------------------------------------------------
    @torch.no_grad()
    def table_bits(self, y: torch.Tensor) -> float:
        """The ideal size in bits of what ``compress(y)`` would write, under the same integer tables."""
        z_hat, indexes, y_hat = self._quantize(y)
        return self.z_prior.table_bits(z_hat) + self.y_cond.table_bits(y_hat, indexes)

    def relaxed_bits(self, y: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
        """Differentiable bits of softly rounded latents ``y_soft``: ẑ = round(h_a(|y|)) with a
        straight-through gradient, scales from the float h_s (``y``: the latents ``y_soft`` comes from)."""
        z = self.h_a(torch.abs(y))
        z_hat = z + (torch.round(z) - z).detach()
        bits = -torch.log2(self.z_prior.likelihood(z_hat)).sum()
        return bits - torch.log2(gaussian_likelihood(y_soft, torch.exp(self.h_s(z_hat)))).sum()

    def decompress(self, chunks: list[bytes], shape) -> torch.Tensor:
        b, _, h, w = shape
        z_hat = self.z_prior.decompress(chunks[0], (b, self.N, h // 4, w // 4))
        return self.y_cond.decompress(chunks[1], self.scale_indexes(z_hat))
