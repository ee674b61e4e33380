"""Scalable recurrent codec with quantized latents and an RNN-based hyperprior, after Su, Cheng,
Sun, Katto, "Scalable Learned Image Compression with a Recurrent Neural Networks-Based
Hyperprior", ICIP 2020.

Like the progressive codec (Toderici 2017, :mod:`lic.models.recurrent`), a recurrent encoder
and decoder code the residual of the previous reconstruction, one *layer* (iteration) at a
time, one chunk per layer, and any prefix of layers decodes.  Unlike it, each layer's latent
is a real-valued tensor quantized by rounding (additive uniform noise in training) and coded
with a Gaussian conditional whose scales come from a hyperprior; the hyper-analysis and the
hyper-synthesis are recurrent across layers, so what layer k's scales are predicted from
includes everything earlier layers sent.  Quality = number of layers (1..L, L = len(lambdas)).

Data flow of layer k (E, D, h_a, h_s: recurrent, states carried from layer to layer; x, x̂
centred to [-½, ½]; γ_k / γ'_k learned per-layer, per-channel gain / inverse gain)::

            ┌──────────────────────────────── x̂_{k-1} ◄───────────────────────────────────┐
            ▼                                                                              │
    x ─(−)─► r_{k-1} ─► E ─► y_k·γ_k ──round──► ŷ_k ─────────────────► ·γ'_k ─► D ─(+)─────► x̂_k
                               │                 ▲ N(0, σ_k²) ⋆ U(-½, ½), scale index from
                              |·|                │ the integer h_s  (chunk k: [len ẑ][ẑ_k][ŷ_k])
                               └─► h_a ─► z_k ─round─► ẑ_k ─► h_s ─► log σ_k
                                   (GRU)     factorized      (integer conv-GRU: state s_k = f(ẑ_1..ẑ_k))
                                             prior, one
                                             per layer

E: conv 3×3/2, 3 conv-RNN cells /2, 1×1 conv to M channels (16× down); D: 1×1 conv, 4
conv-RNN cells each followed by depth-to-space ×2, 1×1 conv, tanh/2 (the progressive codec's
trunks, :mod:`lic.models.recurrent_trunk`, with the cells of :mod:`lic.layers.convrnn`,
``cell=``).  h_a: 3×3 conv, ReLU, a conv-GRU cell /2, 5×5 conv /2 (z: 64× down).  h_s: two
5×5 transposed convs ×2 with ReLU, a hard conv-GRU (3×3, state at the latent resolution), 3×3
conv to log σ.  Inputs of any size are replicate-padded to a multiple of 64 and cropped back.

Ablation (``hyperprior=False``, name ``su2020-rnn-factorized``): no h_a / h_s; each layer's
ŷ_k is coded with its own factorized prior (one table per channel); chunk k is the ŷ_k stream.

Determinism (how scale indexes stay identical on every machine).  ẑ_k and ŷ_k are integers.
The scale index of every latent of layer k is a function of ẑ_1..ẑ_k only, computed in exact
integer arithmetic: the transposed convs run in :class:`lic.layers.IntegerNetwork`, the
recurrent cell is :class:`lic.layers.integer_rnn.IntegerConvGRU` (a GRU with hard-sigmoid
gates and a hard-tanh candidate, whose float twin is what training sees, in fixed point:
integer sums below 2**53 in float64, floor divisions by powers of two) and the output
conv too; so the hidden state carried between layers is an integer tensor that encoder and
decoder compute bit for bit alike, and log σ (in units of 2**-8) is mapped by integer
thresholds to one of the Gaussian conditional's 64 tables.  The state never depends on the
float image decoder (x̂), so entropy decoding cannot drift even where pixels could differ
by rounding (another CPU type); with 1 or 2 threads the pixels are identical too
(PyTorch's native convolution, :func:`lic.models.base.coding`), and in files written with ``--exact``
on every machine (the image decoder in exact arithmetic, :mod:`lic.layers.exact`).

Encoder-side refinement (``compress(..., refine=N)``, :mod:`lic.models.refine`): the encoder's latents
of all K layers are taken as a starting point and searched together for a lower loss Σ_k λ_k·D_k + R
(below) of this one image; the decoder sees integers as always, so any prefix still decodes.

Loss (``loss=``): Σ_k λ_k·D_k + R_k, D_k the distortion after layer k, R_k the bits of layer
k (ŷ_k and ẑ_k) per pixel; D = 255²·MSE (default) or ``MSSSIM_SCALE``·(1 − MS-SSIM).  The
default λ = (0.01, 0.02, 0.04, 0.08) are the paper's (given for MS-SSIM there); with D =
255²·MSE they sit in the range of Ballé's MSE λ, and ``MSSSIM_SCALE`` = 2000 (our choice) puts
1 − MS-SSIM on a comparable scale: a typical mid-rate 1 − MS-SSIM ≈ 0.03 weighs 60, about the
255²·MSE ≈ 65 of a 30 dB reconstruction, so the same λ give similar rates.

Widths: the default (encoder 16, 32, 48, 48; decoder 48, 48, 48, 32, 16; GRU cells; M = 32
latent channels, 32 hyper channels; 0.44 M parameters) is sized for a CPU: all 4 layers of a
768×512 image encode in ~1.3 s and decode in ~0.8 s on one core (benchmarks/scalable_kodak.py).
``PAPER`` holds a paper-scale configuration for GPU training (37 M parameters: the Toderici-size
recurrent networks Su et al. build on, LSTM cells, M = 192, 128 hyper channels; our sizing, not
numbers taken from the paper)::

    lic train --model su2020-rnn-hyperprior --data DIR --out runs/su --minutes 60 \\
        --config '{"cell": "lstm", "enc_channels": [64, 256, 512, 512], "dec_channels": [512, 512, 512, 256, 128],
                   "latent": 192, "hyper": 128, "hyper_hidden": 192, "loss": "ms-ssim"}'

(``--model su2020-rnn-factorized`` trains the ablation; ``--lambda`` sets one λ per layer.)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..entropy import FactorizedPrior, GaussianConditional
from ..entropy import gaussian as G
from ..container import PARAMS_EXACT_SYNTHESIS, _put_varint
from ..entropy.binary import _get_varint  # the container's varint, with a data-chunk error message
from ..layers import IntegerNetwork
from ..layers.integer import fingerprint, log_scale_thresholds
from ..layers.convrnn import CELLS, make_cell
from ..layers.integer_rnn import HardConvGRU, IntegerConvGRU, QConv
from ..errors import FormatError
from .base import CompressionModel, Compressed, check_synthesis, coding, crop_centred, pad_to
from .recurrent_trunk import build_decoder, build_encoder, exact_decoder, run_decoder, run_encoder

LAMBDAS = (0.01, 0.02, 0.04, 0.08)
LOSSES = ("mse", "ms-ssim")
MSSSIM_SCALE = 2000.0
PAPER = {"cell": "lstm", "enc_channels": (64, 256, 512, 512), "dec_channels": (512, 512, 512, 256, 128),
         "latent": 192, "hyper": 128, "hyper_hidden": 192}


def _deconv(cin, cout, k=5, s=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class ScalableRecurrentCodec(CompressionModel):
    name = "su2020-rnn-hyperprior"
    PAD = 64
    progressive = True
    refinable = True  # compress(..., refine=N): encoder-side latent search (lic.models.refine)
    prefix_unit = "layers"  # what one chunk is called in messages
    #: trainable names (lic train --model NAME): the model and its ablation
    variants = {"su2020-rnn-hyperprior": {}, "su2020-rnn-factorized": {"hyperprior": False}}

    def __init__(self, hyperprior: bool = True, lambdas=LAMBDAS, cell: str = "gru", enc_channels=(16, 32, 48, 48),
                 dec_channels=(48, 48, 48, 32, 16), latent: int = 32, hyper: int = 32, hyper_hidden: int = 32,
                 kernel: int = 3, enc_hidden_kernel: int = 1, dec_hidden_kernels=(1, 1, 1, 1), loss: str = "mse"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell '{cell}' (choose from {', '.join(CELLS)})")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
        lambdas = tuple(float(v) for v in lambdas)
        if not lambdas or any(not v > 0 for v in lambdas):
            raise ValueError("lambdas: one positive λ per layer")
        if any(d % 4 for d in dec_channels[1:]):
            raise ValueError("decoder widths must be multiples of 4 (depth-to-space)")
        self.cfg = {"hyperprior": bool(hyperprior), "lambdas": list(lambdas), "cell": cell,
                    "enc_channels": list(enc_channels), "dec_channels": list(dec_channels), "latent": int(latent),
                    "hyper": int(hyper), "hyper_hidden": int(hyper_hidden), "kernel": kernel,
                    "enc_hidden_kernel": enc_hidden_kernel, "dec_hidden_kernels": list(dec_hidden_kernels),
                    "loss": loss}
        self.hyperprior, self.lambdas, self.loss_kind = bool(hyperprior), lambdas, loss
        if not self.hyperprior:
            self.name = "su2020-rnn-factorized"
        self.layers = len(lambdas)
        self.qualities = list(range(1, self.layers + 1))
        self.default_quality = self.layers
        M, N = int(latent), int(hyper)
        self.M, self.N = M, N
        self.enc_stem, self.enc_rnn = build_encoder(cell, enc_channels, kernel, enc_hidden_kernel)
        self.enc_out = nn.Conv2d(enc_channels[-1], M, 1)
        self.dec_stem, self.dec_rnn, self.dec_out = build_decoder(cell, M, dec_channels, kernel, dec_hidden_kernels)
        # latents start a few quantization steps wide, finer for the later layers (larger λ)
        init = torch.tensor([2.0 + 0.5 * math.log(l / lambdas[0]) for l in lambdas]).unsqueeze(1).repeat(1, M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())
        if self.hyperprior:
            H = int(hyper_hidden)
            self.ha_in = nn.Conv2d(M, N, 3, 1, 1)
            self.ha_cell = make_cell("gru", N, N, 3, 2, 1)
            self.ha_out = nn.Conv2d(N, N, 5, 2, 2)
            self.hs_up = nn.Sequential(_deconv(N, N), nn.ReLU(), _deconv(N, N), nn.ReLU())
            self.hs_cell = HardConvGRU(N, H, 3, 3)
            self.hs_out = nn.Conv2d(H, M, 3, 1, 1)
            self.z_priors = nn.ModuleList([FactorizedPrior(N) for _ in lambdas])
            self.y_cond = GaussianConditional()
            self.hs_int_up = IntegerNetwork([m for m in self.hs_up if not isinstance(m, nn.ReLU)])
            self.hs_int_cell = IntegerConvGRU(self.hs_cell)
            self.hs_int_out = QConv(self.hs_out)
            self.register_buffer("scale_thresholds", torch.zeros(0, dtype=torch.int64))
            self.register_buffer("hs_int_of", torch.zeros(32, dtype=torch.uint8))
        else:
            self.y_priors = nn.ModuleList([FactorizedPrior(M) for _ in lambdas])

    def config(self) -> dict:
        return {"arch": "ScalableRecurrentCodec", **self.cfg}

    def rate_label(self, quality: int) -> str:
        return f"{quality} layers"

    # -- one layer --------------------------------------------------------------
    def _gain(self, k: int, inverse: bool = False) -> torch.Tensor:
        g = (self.log_inv_gain if inverse else self.log_gain)[k]
        return torch.exp(g).view(1, -1, 1, 1)

    def _encode_step(self, r: torch.Tensor, states: list, k: int) -> torch.Tensor:
        return self.enc_out(run_encoder(self, r, states)).float() * self._gain(k)

    def _decode_step(self, y_hat: torch.Tensor, states: list, x_hat: torch.Tensor | None, k: int,
                     net=None) -> torch.Tensor:
        """``net``: the exact twin of the decoder (:meth:`_exact_decoder`) instead of the model's own modules."""
        if net is None:
            out = run_decoder(self, y_hat * self._gain(k, inverse=True), states)
        else:
            from ..layers.exact import exp

            scaled = y_hat.cpu().double() * exp(self.log_inv_gain[k].detach().cpu()).view(1, -1, 1, 1)
            out = run_decoder(net, scaled, states, exact=True)
        return out if x_hat is None else x_hat + out

    exact_synthesis = True  # compress(..., exact=True): pixels the same on every machine (lic.layers.exact)

    def _exact_decoder(self) -> nn.Module:
        """The decoder's modules as an exact twin (:func:`lic.layers.exact.exact_copy`, on the CPU)."""
        return exact_decoder(self)

    def _hyper_analysis(self, y: torch.Tensor, state):
        a = F.relu(self.ha_in(torch.abs(y)))
        a, state = self.ha_cell(a, state)
        return self.ha_out(a), state

    def _hyper_synthesis(self, z_hat: torch.Tensor, state):
        """Float twin of the integer path (training): log σ and the new state."""
        h, _ = self.hs_cell(self.hs_up(z_hat), state)
        return self.hs_out(h), h

    def _scale_step(self, z_hat: torch.Tensor, state):
        """Integer path: scale-table index of every latent of this layer, and the new integer state."""
        u = self.hs_int_up(z_hat).clamp_min(0)  # the ReLU after the second transposed conv
        state = self.hs_int_cell(u, state)
        t = self.hs_int_out(state).to(torch.int64)  # log σ in units of 2**-A_BITS
        return torch.bucketize(t, self.scale_thresholds.cpu(), right=True), state

    # -- training / estimation ----------------------------------------------------
    def forward(self, x: torch.Tensor, quality: int | None = None) -> dict:
        """``quality`` = layers (default all).  ``x_hats``: the reconstruction after every layer;
        likelihoods ``y1, z1, y2, z2, ...``.  In eval mode with current tables the Gaussian
        scales are those the coder uses (integer path)."""
        n = self.layers if quality is None else int(quality)
        h, w = x.shape[-2:]
        xp = pad_to(x, self.PAD) - 0.5
        exact = not self.training and self.tables_current()
        enc_states, dec_states = [None] * 3, [None] * 4
        ha_state = hs_state = None
        x_hat, x_hats, liks = None, [], {}
        for k in range(n):
            r = xp if x_hat is None else xp - x_hat
            y = self._encode_step(r, enc_states, k)
            with torch.autocast(x.device.type, enabled=False):  # entropy models in fp32
                if self.hyperprior:
                    z, ha_state = self._hyper_analysis(y, ha_state)
                    z_hat, liks[f"z{k + 1}"] = self.z_priors[k](z.float())
                    if exact:
                        idx, hs_state = self._scale_step(z_hat, hs_state)
                        scale = self.y_cond.table_scales.cpu()[idx].to(y.device)
                    else:
                        log_s, hs_state = self._hyper_synthesis(z_hat, hs_state)
                        # only an upper clamp (exp overflow): the Gaussian conditional bounds small scales
                        # itself, keeping the gradient that lets a too-small scale grow (lic.layers.bound)
                        scale = torch.exp(log_s.float().clamp(max=math.log(G.SCALE_MAX) + 1))
                    y_hat, liks[f"y{k + 1}"] = self.y_cond(y, scale)
                else:
                    y_hat, liks[f"y{k + 1}"] = self.y_priors[k](y)
            x_hat = self._decode_step(y_hat, dec_states, x_hat, k)
            x_hats.append(x_hat)
        x_hats = [(v + 0.5)[..., :h, :w] for v in x_hats]
        return {"x_hat": x_hats[-1], "x_hats": x_hats, "likelihoods": liks}

    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """D of the loss, for images in [0, 1]: 255²·MSE or ``MSSSIM_SCALE``·(1 − MS-SSIM)."""
        if self.loss_kind == "mse":
            return 255.0 ** 2 * F.mse_loss(x_hat, x)
        from .recurrent import _ms_ssim

        return MSSSIM_SCALE * (1 - _ms_ssim(x_hat, x))

    def training_quality(self, rng) -> int:
        return self.layers  # the loss covers every layer (every rate) at once

    def training_loss(self, x: torch.Tensor, out: dict, quality: int):
        """(loss, bpp, mse): Σ_k λ_k·D_k + R_k (R = all layers' bits per pixel)."""
        x = x.float()
        dist = x.new_zeros(())
        for lam, x_hat in zip(self.lambdas, out["x_hats"]):
            dist = dist + lam * self.distortion(x_hat.float(), x)
        n_pix = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = sum(-torch.log2(l.float()).sum() for l in out["likelihoods"].values()) / n_pix
        mse = F.mse_loss(out["x_hat"].float().clamp(0, 1), x)
        return dist + bpp, bpp, mse

    # -- coding tables ------------------------------------------------------------
    def _hs_layers(self):
        return [m for m in self.hs_up if not isinstance(m, nn.ReLU)] + [self.hs_cell.conv_x, self.hs_cell.conv_h,
                                                                       self.hs_cell.conv_c, self.hs_out]

    def _hs_fingerprint(self) -> torch.Tensor:
        return fingerprint(self._hs_layers())

    def integer_coded_layers(self) -> list[nn.Module]:
        return self._hs_layers() if self.hyperprior else []

    def tables_current(self) -> bool:
        if not self.hyperprior:
            return all(p.tables_current() for p in self.y_priors)
        return (all(p.tables_current() for p in self.z_priors) and self.y_cond.tables_current()
                and self.scale_thresholds.numel() > 0
                and bool(torch.equal(self.hs_int_of.cpu(), self._hs_fingerprint())))

    @torch.no_grad()
    def update(self) -> None:
        if not self.hyperprior:
            for p in self.y_priors:
                p.update()
            return
        for p in self.z_priors:
            p.update()
        self.y_cond.update()
        try:
            self.hs_int_up.load_from([m for m in self.hs_up if not isinstance(m, nn.ReLU)])
            self.hs_int_cell.load_from(self.hs_cell)
            self.hs_int_out.load_from(self.hs_out)
        except ValueError as exc:
            from ..errors import ModelError

            raise ModelError(f"cannot build the integer hyper-synthesis: {exc}") from None
        self.scale_thresholds = log_scale_thresholds().to(self.log_gain.device)
        self.hs_int_of = self._hs_fingerprint().to(self.log_gain.device)

    # -- coding -------------------------------------------------------------------
    @coding
    def compress(self, x: torch.Tensor, quality: int, reconstruct: bool = False, refine: int = 0,
                 progress=None, exact: bool = False) -> Compressed:
        """``quality`` layers, one chunk each.  With ``reconstruct``: ``x_hat`` and, in
        ``extra["x_hats"]``, the reconstruction after every layer (what a decoder of the first
        k chunks gives, bit for bit).  ``refine``: steps of encoder-side search for the latents of
        all ``quality`` layers together (:mod:`lic.models.refine`, cost: the loss Σ_k λ_k·D_k + R
        over those layers); ``progress(n)`` is told of each tile's steps.  ``exact``: the file asks for the
        exact synthesis (:mod:`lic.layers.exact`); the encoder's loop and the refinement's cost still use the
        float decoder, the reconstructions are those of the exact one."""
        self.check_quality(quality)
        self.ensure_tables()
        if refine > 0:
            from .refine import refine_latents

            ys = self._code(x, quality)["ys"]
            dev = self.log_gain.device
            xp = pad_to(x.to(dev), self.PAD)
            y = refine_latents(self, xp, torch.cat(ys, dim=1), quality, refine, tuple(x.shape[-2:]),
                               progress=progress)
            return self._code(x, quality, reconstruct, given=list(y.split(self.M, dim=1)), exact=exact)["out"]
        return self._code(x, quality, reconstruct, exact=exact)["out"]

    def _code(self, x: torch.Tensor, quality: int, reconstruct: bool = False, given: list | None = None,
              exact: bool = False) -> dict:
        """The layers' chunks (``out``) and latents before rounding (``ys``); ``given``: latents to code
        instead of the encoder's (refined ones); ``exact``: a file for the exact synthesis."""
        dev = self.log_gain.device
        h, w = x.shape[-2:]
        xp = pad_to(x.to(dev), self.PAD) - 0.5
        enc_states, dec_states = [None] * 3, [None] * 4
        ha_state = hs_state = None
        x_hat, x_hats, chunks, ys, y_hats = None, [], [], [], []
        ideal, hyper_bits, indexes = [], [], []
        for k in range(quality):
            if given is None:
                r = xp if x_hat is None else xp - x_hat
                y = self._encode_step(r, enc_states, k)
            else:
                y = given[k]
            ys.append(y)
            y_hat = torch.round(y)
            if self.hyperprior:
                z, ha_state = self._hyper_analysis(y, ha_state)
                z_hat = torch.round(z)
                idx, hs_state = self._scale_step(z_hat, hs_state)
                zb = self.z_priors[k].compress(z_hat)
                chunks.append(_put_varint(len(zb)) + zb + self.y_cond.compress(y_hat, idx))
                hyper_bits.append(self.z_priors[k].table_bits(z_hat))
                ideal.append(hyper_bits[-1] + self.y_cond.table_bits(y_hat, idx))
                indexes.append(idx)
            else:
                chunks.append(self.y_priors[k].compress(y_hat))
                hyper_bits.append(0.0)
                ideal.append(self.y_priors[k].table_bits(y_hat))
            x_hat = self._decode_step(y_hat, dec_states, x_hat, k)
            x_hats.append(x_hat)
            y_hats.append(y_hat)
        out = Compressed(chunks, params=PARAMS_EXACT_SYNTHESIS if exact else b"")
        out.extra.update({"table_bits": float(sum(ideal)), "layer_table_bits": ideal, "layer_hyper_bits": hyper_bits,
                          "layer_bits": [8 * len(c) for c in chunks], "scale_indexes": indexes})
        if reconstruct:
            if exact:
                net, states, x_hat, x_hats = self._exact_decoder(), [None] * 4, None, []
                for k, y_hat in enumerate(y_hats):
                    x_hat = self._decode_step(y_hat, states, x_hat, k, net)
                    x_hats.append(x_hat)
            out.extra["x_hats"] = [crop_centred(v, h, w) for v in x_hats]
            out.x_hat = out.extra["x_hats"][-1]
        return {"out": out, "ys": ys}

    def refine_problem(self, x: torch.Tensor, real: tuple[int, int], quality: int):
        """The cost that ``compress(..., refine=N)`` lowers, for the latents of the padded block ``x``
        (all ``quality`` layers' latents stacked along the channels)."""
        return _LayeredProblem(self, x, real, quality)

    @coding
    def decompress(self, chunks: list[bytes], height: int, width: int, quality: int, params: bytes = b"") -> torch.Tensor:
        """Decodes however many chunks it gets (1 ≤ k ≤ quality): the image after k layers."""
        self.check_prefix(chunks, quality, "layer")
        check_synthesis(params, self.name)
        self.ensure_tables()
        dev = self.log_gain.device
        net = self._exact_decoder() if params == PARAMS_EXACT_SYNTHESIS else None
        hp, wp = -(-height // self.PAD) * self.PAD, -(-width // self.PAD) * self.PAD
        dec_states = [None] * 4
        hs_state = x_hat = None
        for k, c in enumerate(chunks):
            if self.hyperprior:
                n, pos = _get_varint(c, 0)
                if pos + n > len(c):
                    raise FormatError(f"corrupt .lic file: layer {k + 1} is shorter than its hyper-latents")
                z_hat = self.z_priors[k].decompress(c[pos:pos + n], (1, self.N, hp // 64, wp // 64))
                idx, hs_state = self._scale_step(z_hat, hs_state)
                y_hat = self.y_cond.decompress(c[pos + n:], idx)
            else:
                y_hat = self.y_priors[k].decompress(c, (1, self.M, hp // 16, wp // 16))
            x_hat = self._decode_step(y_hat.to(dev), dec_states, x_hat, k, net)
        return crop_centred(x_hat, height, width)


class _LayeredProblem:
    """Encoder-side refinement (:mod:`lic.models.refine`) of all K layers' latents at once, for one block
    of the padded image: the cost is the model's loss Σ_k λ_k·D_k + R over those K layers, so each
    prefix of the file keeps the weight training gave it.  ``y``: the K layers' latents (after the
    gain) stacked along the channels.  Relaxed: softly rounded latents through the decoder and the
    float twin of the hyper-synthesis (ẑ rounded with a straight-through gradient).  Exact: the
    coder's own path, integer scale tables and bits, the decoder's 8-bit pixels after every layer."""

    lr = 0.1  # Adam step in quantization bins: 0.02, 0.05, 0.1, 0.2 tried at 40 steps on two 512x384 training
    #           crops; 0.1 lowered the loss most (-5.7 % and -8.1 %; the transform codecs' 0.02: -4.4 %, -6.3 %)

    def __init__(self, model: ScalableRecurrentCodec, x: torch.Tensor, real: tuple[int, int], quality: int):
        self.m = model
        self.h, self.w = real
        self.x = x[..., : self.h, : self.w]
        self.pixels = self.h * self.w

    def _d(self, x_hat: torch.Tensor) -> torch.Tensor:
        return self.m.distortion((x_hat[..., : self.h, : self.w] + 0.5), self.x)

    def relaxed(self, y: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
        m = self.m
        bits = dist = y.new_zeros(())
        dec_states, ha_state, hs_state, x_hat = [None] * 4, None, None, None
        for k, (yk, sk) in enumerate(zip(y.split(m.M, dim=1), y_soft.split(m.M, dim=1))):
            if m.hyperprior:
                z, ha_state = m._hyper_analysis(yk, ha_state)
                z_hat = z + (torch.round(z) - z).detach()
                log_s, hs_state = m._hyper_synthesis(z_hat, hs_state)
                scale = torch.exp(log_s.clamp(max=math.log(G.SCALE_MAX) + 1))
                bits = (bits - torch.log2(m.z_priors[k].likelihood(z_hat)).sum()
                        - torch.log2(G.gaussian_likelihood(sk, scale)).sum())
            else:
                bits = bits - torch.log2(m.y_priors[k].likelihood(sk)).sum()
            x_hat = m._decode_step(sk, dec_states, x_hat, k)
            dist = dist + m.lambdas[k] * self._d(x_hat)
        return dist + bits / self.pixels

    @torch.no_grad()
    def exact(self, y: torch.Tensor) -> float:
        m = self.m
        bits, dist = 0.0, 0.0
        dec_states, ha_state, hs_state, x_hat = [None] * 4, None, None, None
        for k, yk in enumerate(y.split(m.M, dim=1)):
            y_hat = torch.round(yk)
            if m.hyperprior:
                z, ha_state = m._hyper_analysis(yk, ha_state)
                z_hat = torch.round(z)
                idx, hs_state = m._scale_step(z_hat, hs_state)
                bits += m.z_priors[k].table_bits(z_hat) + m.y_cond.table_bits(y_hat, idx)
            else:
                bits += m.y_priors[k].table_bits(y_hat)
            x_hat = m._decode_step(y_hat, dec_states, x_hat, k)
            pixels = torch.floor((x_hat + 0.5).clamp(0, 1) * 255 + 0.5) / 255 - 0.5  # as imageio.from_tensor
            dist += m.lambdas[k] * float(self._d(pixels))
        return dist + bits / self.pixels


__all__ = ["ScalableRecurrentCodec", "LAMBDAS", "LOSSES", "PAPER", "MSSSIM_SCALE"]
