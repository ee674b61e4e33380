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
h_a / h_s: 3×3 then two 5×5 stride-2 convolutions with ReLU (4× further down); they,
the two entropy models and the integer copy of h_s form the hyperprior latent codec
(:class:`lic.latent_codecs.HyperpriorLatentCodec`), shared with the attention model.
Inputs of any size are replicate-padded to a multiple of 64 and cropped back.

Determinism: ẑ and ŷ are integers; the scale index of each latent comes from
the integer (fixed-point) copy of h_s, so encoder and decoder on any machine
choose the same probability table.  Only g_s runs in float.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..latent_codecs import HyperpriorLatentCodec
from ..latent_codecs.hyperprior import conv, deconv
from ..layers import GDN, IGDN
from .base import CompressionModel, Compressed, coding, pad_to

# λ per quality level (distortion = λ · 255² · MSE, rate in bits per pixel)
LAMBDAS = (0.0018, 0.0040, 0.0090, 0.0200, 0.0447, 0.1000)

#: state-dict prefixes of weights saved before the hyperprior became a latent codec (``latent.``)
_LEGACY_PREFIXES = ("h_a.", "h_s.", "z_prior.", "y_cond.", "h_s_int.", "scale_thresholds", "h_s_int_of")


class ScaleHyperprior(CompressionModel):
    name = "bmshj2018-hyperprior"
    PAD = 16 * HyperpriorLatentCodec.multiple  # g_a down-samples 16×, the hyperprior 4× more

    def __init__(self, N: int = 128, M: int = 192, lambdas=LAMBDAS):
        super().__init__()
        self.N, self.M = N, M
        self.lambdas = tuple(float(v) for v in lambdas)
        self.qualities = list(range(1, len(self.lambdas) + 1))
        self.default_quality = (len(self.lambdas) + 1) // 2
        self.g_a = nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = nn.Sequential(deconv(M, N), IGDN(N), deconv(N, N), IGDN(N), deconv(N, N), IGDN(N), deconv(N, 3))
        self.latent = HyperpriorLatentCodec(M, N)
        # gains start at sqrt(λ_q / λ_mid): finer quantization for higher λ
        mid = self.lambdas[len(self.lambdas) // 2]
        init = torch.tensor([0.5 * math.log(l / mid) for l in self.lambdas]).unsqueeze(1).repeat(1, M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())

    def config(self) -> dict:
        return {"arch": "ScaleHyperprior", "N": self.N, "M": self.M, "lambdas": list(self.lambdas)}

    def _gain(self, quality: int, inverse: bool = False) -> torch.Tensor:
        g = (self.log_inv_gain if inverse else self.log_gain)[quality - 1]
        return torch.exp(g).view(1, -1, 1, 1)

    # -- training / estimation -------------------------------------------
    def forward(self, x: torch.Tensor, quality: int) -> dict:
        """Likelihoods for the rate term; in eval mode, of the tables the coder will use.

        Under autocast (bf16 training on GPU) only the transforms run in low precision:
        the hyperprior, the likelihoods and so the rate term are computed in fp32.
        """
        y = self.g_a(pad_to(x, self.PAD)).float() * self._gain(quality)
        with torch.autocast(x.device.type, enabled=False):
            y_hat, likelihoods = self.latent(y)
        x_hat = self.g_s(y_hat * self._gain(quality, inverse=True))
        h, w = x.shape[-2:]
        return {"x_hat": x_hat[..., :h, :w], "likelihoods": likelihoods}

    # -- coding tables -----------------------------------------------------
    def tables_current(self) -> bool:
        return self.latent.tables_current()

    def update(self) -> None:
        self.latent.update()

    def upgrade_state(self, state: dict) -> dict:
        """Weights saved before the hyperprior moved into ``latent``: the same tensors under old names."""
        return {("latent." + k if k.startswith(_LEGACY_PREFIXES) else k): v for k, v in state.items()}

    # -- coding -------------------------------------------------------------
    @coding
    def compress(self, x: torch.Tensor, quality: int, reconstruct: bool = False) -> Compressed:
        self.check_quality(quality)
        self.ensure_tables()
        y = self.g_a(pad_to(x, self.PAD)) * self._gain(quality)
        chunks, y_hat, bits = self.latent.compress(y)
        out = Compressed(chunks)
        out.extra["table_bits"] = bits
        if reconstruct:
            out.x_hat = self._synthesize(y_hat, quality, x.shape[-2:])
        return out

    @coding
    def decompress(self, chunks: list[bytes], height: int, width: int, quality: int, params: bytes = b"") -> torch.Tensor:
        from ..errors import FormatError

        self.check_quality(quality)
        if len(chunks) != self.latent.chunks:
            raise FormatError(f"corrupt .lic file: {self.name} expects {self.latent.chunks} data chunks, "
                              f"found {len(chunks)}")
        self.ensure_tables()
        hp, wp = -(-height // self.PAD) * self.PAD, -(-width // self.PAD) * self.PAD
        y_hat = self.latent.decompress(chunks, (1, self.M, hp // 16, wp // 16))
        return self._synthesize(y_hat, quality, (height, width))

    def _synthesize(self, y_hat: torch.Tensor, quality: int, size) -> torch.Tensor:
        dev = next(self.parameters()).device
        x_hat = self.g_s(y_hat.to(dev) * self._gain(quality, inverse=True))
        return x_hat[..., : size[0], : size[1]].clamp(0, 1)
