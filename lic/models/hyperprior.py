"""Variational image compression with a scale hyperprior (Ballé, Minnen, Singh, Hwang,
Johnston, ICLR 2018), MSE-optimized, with gain vectors for variable rate (Cui et al.,
"Asymmetric Gained Deep Image Compression", CVPR 2021) so that one network serves
every quality level.

Data flow (Q = quality level, γ_Q / γ'_Q = learned per-channel gain / inverse gain)::

    x ─g_a─► y·γ_Q ──round──► ŷ ─────────────────────────────► ·γ'_Q ─g_s─► x̂
                │               ▲ coded with N(0, σ²) ⋆ U(-½, ½)
               |·|              │
                └─h_a─► z ─round─► ẑ ─h_s (integer network)─► log σ ─► scale index
                              coded with the factorized prior

g_a / g_s: four 5×5 stride-2 (transposed) convolutions with GDN / IGDN (16× down).
h_a / h_s: 3×3 then two 5×5 stride-2 convolutions with ReLU (4× further down).
Inputs of any size are replicate-padded to a multiple of 64 and cropped back.

Determinism: ẑ and ŷ are integers; the scale index of each latent comes from
the integer (fixed-point) copy of h_s, so encoder and decoder on any machine
choose the same probability table.  Only g_s runs in float.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..entropy import FactorizedPrior, GaussianConditional
from ..layers import GDN, IGDN, IntegerNetwork
from ..layers.integer import fingerprint, log_scale_thresholds
from .base import CompressionModel, Compressed, coding, pad_to

# λ per quality level (distortion = λ · 255² · MSE, rate in bits per pixel)
LAMBDAS = (0.0018, 0.0040, 0.0090, 0.0200, 0.0447, 0.1000)


def conv(cin, cout, k=5, s=2):
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def deconv(cin, cout, k=5, s=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class ScaleHyperprior(CompressionModel):
    name = "bmshj2018-hyperprior"
    PAD = 64

    def __init__(self, N: int = 128, M: int = 192, lambdas=LAMBDAS):
        super().__init__()
        self.N, self.M = N, M
        self.lambdas = tuple(float(v) for v in lambdas)
        self.qualities = list(range(1, len(self.lambdas) + 1))
        self.default_quality = (len(self.lambdas) + 1) // 2
        self.g_a = nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = nn.Sequential(deconv(M, N), IGDN(N), deconv(N, N), IGDN(N), deconv(N, N), IGDN(N), deconv(N, 3))
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(), deconv(N, N), nn.ReLU(), conv(N, M, 3, 1))
        # gains start at sqrt(λ_q / λ_mid): finer quantization for higher λ
        mid = self.lambdas[len(self.lambdas) // 2]
        init = torch.tensor([0.5 * math.log(l / mid) for l in self.lambdas]).unsqueeze(1).repeat(1, M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())
        self.z_prior = FactorizedPrior(N)
        self.y_cond = GaussianConditional()
        self.h_s_int = IntegerNetwork(self._h_s_convs())
        self.register_buffer("scale_thresholds", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("h_s_int_of", torch.zeros(32, dtype=torch.uint8))

    def config(self) -> dict:
        return {"arch": "ScaleHyperprior", "N": self.N, "M": self.M, "lambdas": list(self.lambdas)}

    def _h_s_convs(self):
        return [m for m in self.h_s if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]

    def _gain(self, quality: int, inverse: bool = False) -> torch.Tensor:
        g = (self.log_inv_gain if inverse else self.log_gain)[quality - 1]
        return torch.exp(g).view(1, -1, 1, 1)

    # -- training / estimation -------------------------------------------
    def forward(self, x: torch.Tensor, quality: int) -> dict:
        """Likelihoods for the rate term; in eval mode, of the tables the coder will use.

        Under autocast (bf16 training on GPU) only the transforms run in low precision:
        the hyperprior, the likelihoods and so the rate term are computed in fp32.
        """
        xp = pad_to(x, self.PAD)
        y = self.g_a(xp).float() * self._gain(quality)
        with torch.autocast(x.device.type, enabled=False):
            z = self.h_a(torch.abs(y)).float()
            z_hat, z_lik = self.z_prior(z)
            if self.training or not self.tables_current():
                scale = torch.exp(self.h_s(z_hat))
            else:
                scale = self.y_cond.table_scales[self.scale_indexes(z_hat)].to(y.device)
            y_hat, y_lik = self.y_cond(y, scale)
        x_hat = self.g_s(y_hat * self._gain(quality, inverse=True))
        h, w = x.shape[-2:]
        return {"x_hat": x_hat[..., :h, :w], "likelihoods": {"y": y_lik, "z": z_lik}}

    # -- coding tables -----------------------------------------------------
    def _h_s_fingerprint(self) -> torch.Tensor:
        return fingerprint(self._h_s_convs())

    def tables_current(self) -> bool:
        return (self.z_prior.tables_current() and self.y_cond.tables_current()
                and self.scale_thresholds.numel() > 0
                and bool(torch.equal(self.h_s_int_of, self._h_s_fingerprint())))

    @torch.no_grad()
    def update(self) -> None:
        self.z_prior.update()
        self.y_cond.update()
        self.h_s_int.load_from(self._h_s_convs())
        self.scale_thresholds = log_scale_thresholds()
        self.h_s_int_of = self._h_s_fingerprint()

    def scale_indexes(self, z_hat: torch.Tensor) -> torch.Tensor:
        """Integer scale-table index of every latent, identical on every machine."""
        t = self.h_s_int(z_hat).to(torch.int64)  # log σ in units of 2**-A_BITS
        return torch.bucketize(t, self.scale_thresholds.cpu(), right=True)

    # -- coding -------------------------------------------------------------
    @coding
    def compress(self, x: torch.Tensor, quality: int, reconstruct: bool = False) -> Compressed:
        self.check_quality(quality)
        self.ensure_tables()
        xp = pad_to(x, self.PAD)
        y = self.g_a(xp) * self._gain(quality)
        z_hat = torch.round(self.h_a(torch.abs(y)))
        indexes = self.scale_indexes(z_hat)
        y_hat = torch.round(y)
        chunks = [self.z_prior.compress(z_hat), self.y_cond.compress(y_hat, indexes)]
        out = Compressed(chunks)
        out.extra["table_bits"] = self.z_prior.table_bits(z_hat) + self.y_cond.table_bits(y_hat, indexes)
        if reconstruct:
            out.x_hat = self._synthesize(y_hat, quality, x.shape[-2:])
        return out

    @coding
    def decompress(self, chunks: list[bytes], height: int, width: int, quality: int, params: bytes = b"") -> torch.Tensor:
        from ..errors import FormatError

        self.check_quality(quality)
        if len(chunks) != 2:
            raise FormatError(f"corrupt .lic file: {self.name} expects 2 data chunks, found {len(chunks)}")
        hp, wp = -(-height // self.PAD) * self.PAD, -(-width // self.PAD) * self.PAD
        z_hat = self.z_prior.decompress(chunks[0], (1, self.N, hp // 64, wp // 64))
        indexes = self.scale_indexes(z_hat)
        y_hat = self.y_cond.decompress(chunks[1], indexes)
        return self._synthesize(y_hat, quality, (height, width))

    def _synthesize(self, y_hat: torch.Tensor, quality: int, size) -> torch.Tensor:
        dev = next(self.parameters()).device
        x_hat = self.g_s(y_hat.to(dev) * self._gain(quality, inverse=True))
        return x_hat[..., : size[0], : size[1]].clamp(0, 1)
