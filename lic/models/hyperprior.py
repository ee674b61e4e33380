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
Inputs of any size are replicate-padded to a multiple of 64 and cropped back.  forward(),
compress() and decompress() are those of every one-shot transform codec
(:class:`lic.models.transform.TransformCodec`).

Determinism: ẑ and ŷ are integers; the scale index of each latent comes from
the integer (fixed-point) copy of h_s, so encoder and decoder on any machine
choose the same probability table.  Only g_s runs in float, and in files written with
``--exact`` not even it (:mod:`lic.layers.exact`: the same pixels on every machine).
"""

from __future__ import annotations

import torch.nn as nn

from ..latent_codecs import HyperpriorLatentCodec
from ..latent_codecs.hyperprior import conv, deconv
from ..layers import GDN, IGDN
from .transform import TransformCodec

# λ per quality level (distortion = λ · 255² · MSE, rate in bits per pixel)
LAMBDAS = (0.0018, 0.0040, 0.0090, 0.0200, 0.0447, 0.1000)

#: state-dict prefixes of weights saved before the hyperprior became a latent codec (``latent.``)
_LEGACY_PREFIXES = ("h_a.", "h_s.", "z_prior.", "y_cond.", "h_s_int.", "scale_thresholds", "h_s_int_of")


class ScaleHyperprior(TransformCodec):
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
        self.init_gains()

    def config(self) -> dict:
        return {"arch": "ScaleHyperprior", "N": self.N, "M": self.M, "lambdas": list(self.lambdas)}

    def upgrade_state(self, state: dict) -> dict:
        """Weights saved before the hyperprior moved into ``latent``: the same tensors under old names."""
        return {("latent." + k if k.startswith(_LEGACY_PREFIXES) else k): v for k, v in state.items()}
