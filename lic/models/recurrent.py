"""Progressive recurrent codec of Toderici, Vincent, Johnston, Hwang, Minnen, Shor, Covell,
"Full Resolution Image Compression with Recurrent Neural Networks", CVPR 2017.

One network, every rate: iteration ``t`` encodes the residual of the current
reconstruction into 32 bits per 16×16 block (0.125 bpp) and the decoder refines the
image; a file holds one chunk per iteration, and any prefix of iterations decodes.
Quality = number of iterations (1..16 by default).

Data flow of iteration t (E_t, D_t: recurrent, their states carried across iterations;
x and x̂ centred to [-½, ½])::

            ┌──────────────────────────── x̂_{t-1} ◄─────────────────────────────┐
            ▼                                                                    │
    x ─(−)─► r_{t-1} ─·g_t─► E_t ─► binarizer ─► b_t ∈ {±1}^{32×H/16×W/16} ─► D_t ─► ÷g_t ─(+)─► x̂_t
                              │       1×1 conv, tanh,                │  chunk t: b_t coded with the
    E_t: conv 3×3/2, then     │       ±1 (stochastic in training,    │  binary context model: all bits
    3 conv-RNN cells /2       │       straight-through; sign when    │  of iterations < t, and the
    (16× down)                │       coding)                        │  channel groups of b_t decoded
                                                                     │  before (lic.entropy.binary)
                                                                 D_t: 1×1 conv, 4 conv-RNN cells,
                                                                 each followed by depth-to-space ×2

Reconstruction (``reconstruction=``):

* ``oneshot``:  x̂_t = D_t(b_t)                  (every iteration predicts the whole image)
* ``additive``: x̂_t = x̂_{t-1} + D_t(b_t)
* ``scaled``:   additive with residual scaling: g_t = exp(G(x̂_{t-1}) + β_t) per 8×8 block
  (G: three 3×3 stride-2 convs on the reconstruction, known to the decoder; β_t a
  learned per-iteration offset, our addition, starting from ``gain_init`` = (first, step):
  β_t = first + (t−1)·step, default (0, 0); g_1 = 1), the encoder sees g_t·r_{t-1},
  the decoder adds D_t(b_t)/g_t.  ``oneshot``/``additive`` use g ≡ 1.

E_t and D_t are the trunks both recurrent codecs share (:mod:`lic.models.recurrent_trunk`).
Cells (``cell=``, ``encoder_cell=``): lstm, associative, gru, residual-gru (see
:mod:`lic.layers.convrnn`).  The paper's widths (encoder 64, 256, 512, 512; decoder
512, 512, 512, 256, 128; ``PAPER``) cost 185k + 537k MAC per pixel and iteration
(encoder + decoder: ~280 GMAC per encoded iteration of a 768×512 image, ~210 GMAC per
decoded one); the default is ~8× narrower (16, 32, 64, 64 / 64, 64, 64, 32, 16:
3.6k + 8.4k MAC per pixel and iteration, 60× fewer), sized for a CPU.

Binarizer (``binarizer=``): ``stochastic`` (the paper's: b = ±1 with E[b] = tanh output in
training) or ``sign`` (training sees the very bits coding sends); both straight-through.

Loss (``loss=``): the paper's L1 on the residual summed over iterations, or MSE or
1 − MS-SSIM summed over iterations; plus the context model's BCE rate (it has its
own parameters, and the bits are detached: as in the paper the entropy coder does not
steer the encoder).  A sum of distortions is dominated by the first iterations (the MSE
after 16 iterations is ~8× smaller than after one), so ``log-mse`` and ``log-ms-ssim``
average ln(MSE) or ln(1 − MS-SSIM) over the iterations instead: every iteration weighs
the same in dB (our option, not the paper's; BD-rates are measured in dB).

Determinism: the bits are integers and their probabilities come from an integer
network (:mod:`lic.entropy.binary`), so entropy decoding is exact on every machine;
the image decoder runs in float (PyTorch's native convolution, no oneDNN), identical
for any thread count (on another CPU type pixels may differ by rounding, as for the
hyperprior's synthesis; entropy decoding never depends on it), or, in files written with
``--exact``, in exact arithmetic (:mod:`lic.layers.exact`: the same pixels on every machine).  Inputs of any size
are replicate-padded to a multiple of 16 and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..entropy.binary import BinaryContextModel
from ..layers.convrnn import CELLS
from ..container import PARAMS_EXACT_SYNTHESIS
from .base import CompressionModel, Compressed, check_synthesis, coding, crop_centred, pad_to
from .recurrent_trunk import build_decoder, build_encoder, exact_decoder, run_decoder, run_encoder

RECONSTRUCTIONS = ("oneshot", "additive", "scaled")
BINARIZERS = ("stochastic", "sign")
LOSSES = ("l1", "mse", "ms-ssim", "log-mse", "log-ms-ssim")
PAPER = {"enc_channels": (64, 256, 512, 512), "dec_channels": (512, 512, 512, 256, 128)}


class RecurrentCodec(CompressionModel):
    name = "toderici2017-rnn"
    PAD = 16
    progressive = True
    prefix_unit = "iterations"  # what one chunk is called in messages
    refinable = True  # compress(..., refine=N): encoder-side search for the bits (lic.models.refine_bits)

    def __init__(self, cell: str = "lstm", encoder_cell: str | None = None, reconstruction: str = "additive",
                 iterations: int = 16, bits: int = 32, enc_channels=(16, 32, 64, 64),
                 dec_channels=(64, 64, 64, 32, 16), kernel: int = 3, enc_hidden_kernel: int = 1,
                 dec_hidden_kernels=(1, 1, 3, 3), loss: str = "l1", context_hidden=(32, 32),
                 context_groups: int = 4, context_checkerboard: bool = False, context_buckets: int = 64,
                 binarizer: str = "stochastic", gain_init=(0.0, 0.0)):
        super().__init__()
        encoder_cell = encoder_cell or cell
        for c in (cell, encoder_cell):
            if c not in CELLS:
                raise ValueError(f"unknown cell '{c}' (choose from {', '.join(CELLS)})")
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction '{reconstruction}' (choose from {', '.join(RECONSTRUCTIONS)})")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
        if any(d % 4 for d in dec_channels[1:]):
            raise ValueError("decoder widths must be multiples of 4 (depth-to-space)")
        if binarizer not in BINARIZERS:
            raise ValueError(f"unknown binarizer '{binarizer}' (choose from {', '.join(BINARIZERS)})")
        self.binarizer_kind = binarizer
        self.cfg = {"cell": cell, "encoder_cell": encoder_cell, "reconstruction": reconstruction,
                    "iterations": int(iterations), "bits": int(bits), "enc_channels": list(enc_channels),
                    "dec_channels": list(dec_channels), "kernel": kernel, "enc_hidden_kernel": enc_hidden_kernel,
                    "dec_hidden_kernels": list(dec_hidden_kernels), "loss": loss,
                    "context_hidden": list(context_hidden), "context_groups": context_groups,
                    "context_checkerboard": bool(context_checkerboard), "context_buckets": context_buckets,
                    "binarizer": binarizer, "gain_init": [float(v) for v in gain_init]}
        self.iterations, self.bits, self.reconstruction, self.loss_kind = int(iterations), int(bits), reconstruction, loss
        self.qualities = list(range(1, self.iterations + 1))
        self.default_quality = self.iterations // 2 or 1
        self.enc_stem, self.enc_rnn = build_encoder(encoder_cell, enc_channels, kernel, enc_hidden_kernel)
        self.binarizer = nn.Conv2d(enc_channels[-1], bits, 1)
        self.dec_stem, self.dec_rnn, self.dec_out = build_decoder(cell, bits, dec_channels, kernel, dec_hidden_kernels)
        if reconstruction == "scaled":
            self.gain_net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(),
                                          nn.Conv2d(16, 1, 3, 2, 1))
            nn.init.zeros_(self.gain_net[-1].weight)
            nn.init.zeros_(self.gain_net[-1].bias)
            first, step = (float(v) for v in gain_init)  # β_t = first + (t-1)·step for t >= 1 (β_0 unused)
            start = [0.0] + [first + (t - 1) * step for t in range(1, self.iterations)]
            self.gain_bias = nn.Parameter(torch.tensor(start))
        self.context = BinaryContextModel(bits, self.iterations, tuple(context_hidden), kernel, context_groups,
                                          context_checkerboard, context_buckets)

    def config(self) -> dict:
        return {"arch": "RecurrentCodec", **self.cfg}

    def rate_label(self, quality: int) -> str:
        return f"{quality} it"

    # -- one iteration ------------------------------------------------------
    def _gain(self, x_hat: torch.Tensor, t: int, net=None) -> torch.Tensor | None:
        """``net``: the exact twin of the decoder (:meth:`_exact_decoder`) instead of the model's own modules."""
        if self.reconstruction != "scaled" or t == 0:
            return None
        if net is not None:
            from ..layers.exact import exp

            log_g = (net.gain_net(x_hat) + self.gain_bias[t].detach().cpu().double()).clamp(-3.0, 6.0)
            return F.interpolate(exp(log_g), scale_factor=8, mode="nearest")
        log_g = (self.gain_net(x_hat) + self.gain_bias[t]).clamp(-3.0, 6.0)
        return F.interpolate(torch.exp(log_g), scale_factor=8, mode="nearest")

    def _encode_step(self, r: torch.Tensor, states: list) -> torch.Tensor:
        """Residual -> binarizer activations in (-1, 1) (before binarization)."""
        return torch.tanh(self.binarizer(run_encoder(self, r, states)))

    def _binarize(self, y: torch.Tensor) -> torch.Tensor:
        hard = torch.where(y >= 0, 1.0, -1.0).to(y.dtype)
        if not self.training:
            return hard
        if self.binarizer_kind == "sign":  # training sees the bits coding sends; straight-through gradient
            return y + (hard - y).detach()
        sample = torch.where(torch.rand_like(y) < (1 + y) / 2, 1.0, -1.0).to(y.dtype)  # E[sample] = y
        return y + (sample - y).detach()  # straight-through

    def _decode_step(self, b: torch.Tensor, states: list, x_hat: torch.Tensor | None, gain, net=None) -> torch.Tensor:
        """``net``: the exact twin of the decoder (:meth:`_exact_decoder`) instead of the model's own modules."""
        out = run_decoder(self if net is None else net, b, states, exact=net is not None)
        if self.reconstruction == "oneshot" or x_hat is None:
            return out
        return x_hat + (out if gain is None else out / gain)

    def _run(self, xp: torch.Tensor, n: int, binarize):
        """Encoder + decoder loop on a padded, centred image: per-iteration bits and reconstructions."""
        enc_states = [None] * 3
        dec_states = [None] * 4
        x_hat = None
        bits, det_bits, x_hats = [], [], []
        for t in range(n):
            gain = self._gain(x_hat, t)
            r = xp if x_hat is None else xp - x_hat
            y = self._encode_step(r if gain is None else r * gain, enc_states)
            b = binarize(y)
            x_hat = self._decode_step(b, dec_states, x_hat, gain)
            bits.append(b)
            det_bits.append(torch.where(y >= 0, 1.0, -1.0).to(y.dtype).detach())
            x_hats.append(x_hat)
        return bits, det_bits, x_hats

    # -- training / estimation -------------------------------------------------
    def forward(self, x: torch.Tensor, quality: int | None = None) -> dict:
        """``quality`` = iterations (default all).  ``x_hats``: the reconstruction after every iteration."""
        n = self.iterations if quality is None else int(quality)
        h, w = x.shape[-2:]
        xp = pad_to(x, self.PAD) - 0.5
        _, det_bits, x_hats = self._run(xp, n, self._binarize)
        # the context model learns the bits that coding will see: sign(y), detached
        bits = torch.stack(det_bits, 1).float()
        with torch.autocast(x.device.type, enabled=False):  # the rate term in fp32
            if self.training or not self.tables_current():
                lik = self.context.likelihoods(bits)
            else:
                lik = self._table_likelihoods(bits)
        x_hats = [(v + 0.5)[..., :h, :w] for v in x_hats]
        return {"x_hat": x_hats[-1], "x_hats": x_hats, "likelihoods": {"bits": lik}, "bits": bits}

    def _table_likelihoods(self, bits: torch.Tensor) -> torch.Tensor:
        """Probabilities the coder really uses (eval mode, current tables)."""
        from ..entropy.tables import TOTAL

        out = torch.empty(bits.shape, dtype=torch.float64)
        freqs = self.context.freqs.cpu().double()
        masks = self.context.step_masks(*bits.shape[-2:])
        for i in range(bits.shape[0]):
            bb = bits[i].detach().cpu().to(torch.int64)
            for t in range(bb.shape[0]):
                rows = self.context.buckets_for(bb, bb[t], t, range(self.context.steps))
                rows = (rows * masks).sum(0)
                sym = (bb[t] + 1) // 2
                out[i, t] = freqs[rows, sym] / TOTAL
        return out.to(bits.device, torch.float32)

    def training_quality(self, rng) -> int:
        return self.iterations  # the loss covers every iteration (every rate) at once

    def training_loss(self, x: torch.Tensor, out: dict, quality: int):
        """(loss, bpp, mse): distortion summed over iterations + the context model's rate (BCE, in bits)."""
        x = x.float()
        dist = x.new_zeros(())
        k = len(out["x_hats"])
        for x_hat in out["x_hats"]:
            x_hat = x_hat.float()
            if self.loss_kind == "l1":
                dist = dist + (x - x_hat).abs().mean()
            elif self.loss_kind == "mse":
                dist = dist + F.mse_loss(x_hat, x)
            elif self.loss_kind == "ms-ssim":
                dist = dist + 1 - _ms_ssim(x_hat, x)
            elif self.loss_kind == "log-mse":  # equal weight per iteration in dB (see the module docstring)
                dist = dist + torch.log(F.mse_loss(x_hat, x).clamp_min(1e-10)) / k
            else:  # log-ms-ssim
                dist = dist + torch.log((1 - _ms_ssim(x_hat, x)).clamp_min(1e-10)) / k
        lik = out["likelihoods"]["bits"].float()
        n_pix = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = -torch.log2(lik).sum() / n_pix
        bits_per_bit = -torch.log2(lik).mean()
        mse = F.mse_loss(out["x_hat"].float().clamp(0, 1), x)
        return dist + bits_per_bit, bpp, mse

    # -- coding tables ----------------------------------------------------------
    def tables_current(self) -> bool:
        return self.context.tables_current()

    def update(self) -> None:
        self.context.update()

    # -- coding -----------------------------------------------------------------
    def _latent_size(self, height: int, width: int):
        return -(-height // self.PAD), -(-width // self.PAD)

    exact_synthesis = True  # compress(..., exact=True): pixels the same on every machine (lic.layers.exact)

    def _exact_decoder(self) -> nn.Module:
        """The decoder's modules as an exact twin (:func:`lic.layers.exact.exact_copy`, on the CPU)."""
        return exact_decoder(self, **({"gain_net": self.gain_net} if self.reconstruction == "scaled" else {}))

    def _reconstructions(self, bits: torch.Tensor, exact: bool = False):
        """Yields x̂ after each iteration of ``bits`` (iterations × C × h × w), as the decoder computes it: in
        float32 on the model's device, or (``exact``) in exact arithmetic on the CPU."""
        net = self._exact_decoder() if exact else None
        dev, dtype = (torch.device("cpu"), torch.float64) if exact else (next(self.parameters()).device, torch.float32)
        states, x_hat = [None] * 4, None
        for t in range(bits.shape[0]):
            gain = self._gain(x_hat, t, net)
            x_hat = self._decode_step(bits[t:t + 1].to(dev, dtype), states, x_hat, gain, net)
            yield x_hat

    def refine_blocks(self, height: int, width: int, quality: int) -> int:
        from .refine_bits import blocks

        return quality * blocks(height, width)  # each iteration searches its tiles

    @coding
    def compress(self, x: torch.Tensor, quality: int, reconstruct: bool = False, exact: bool = False,
                 refine: int = 0, progress=None) -> Compressed:
        """``quality`` iterations, one chunk each.  With ``reconstruct``: ``x_hat`` and, in
        ``extra["x_hats"]``, the reconstruction after every iteration (what a decoder of the
        first k chunks gives).  ``exact``: the file asks for the exact synthesis (the header's params;
        :mod:`lic.layers.exact`); the encoder's own loop still runs in float (the bits it chooses need
        not be reproducible, only their decoding), the reconstructions are those of the exact decoder.
        ``refine``: steps of encoder-side search for each iteration's bits (:mod:`lic.models.refine_bits`);
        ``progress(n)`` is told of each tile's steps."""
        self.check_quality(quality)
        self.ensure_tables()
        dev = next(self.parameters()).device
        h, w = x.shape[-2:]
        xp = pad_to(x.to(dev), self.PAD) - 0.5
        if refine > 0:
            from .refine_bits import refine_bits

            bits, x_hats = refine_bits(self, xp, quality, refine, (h, w), progress)
        else:
            bits, _, x_hats = self._run(xp, quality, _hard)
        b = torch.cat(bits, 0)  # (n, C, h/16, w/16)
        chunks, ideal = self.context.encode(b)
        out = Compressed(chunks, params=PARAMS_EXACT_SYNTHESIS if exact else b"")
        raw = b[0].numel()
        out.extra.update({"table_bits": float(sum(ideal)), "iteration_table_bits": ideal,
                          "iteration_raw_bits": [raw] * quality,
                          "iteration_bits": [8 * len(c) for c in chunks]})
        if reconstruct:
            if exact:
                x_hats = list(self._reconstructions(b, exact=True))
            out.extra["x_hats"] = [crop_centred(v, h, w) for v in x_hats]
            out.x_hat = out.extra["x_hats"][-1]
        return out

    @coding
    def decompress(self, chunks: list[bytes], height: int, width: int, quality: int, params: bytes = b"") -> torch.Tensor:
        """Decodes however many chunks it gets (1 ≤ k ≤ quality): the image after k iterations."""
        self.check_prefix(chunks, quality, "iteration")
        check_synthesis(params, self.name)
        self.ensure_tables()
        hl, wl = self._latent_size(height, width)
        bits = self.context.decode(chunks, hl, wl)
        for x_hat in self._reconstructions(bits, exact=params == PARAMS_EXACT_SYNTHESIS):
            pass  # the last iteration's image; each step frees the one before
        return crop_centred(x_hat, height, width)


def _hard(y: torch.Tensor) -> torch.Tensor:
    return torch.where(y >= 0, 1.0, -1.0).to(y.dtype)


def _ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MS-SSIM on [0, 1] images; the Gaussian window shrinks for crops below 176 pixels
    (pytorch-msssim needs side > 16·(window − 1)), single-scale SSIM below 33."""
    from pytorch_msssim import ms_ssim, ssim

    side = min(a.shape[-2:])
    win = min(11, 2 * ((side - 1) // 32) + 1)
    if win < 3:
        return ssim(a.clamp(0, 1), b, data_range=1.0, size_average=True, win_size=3)
    return ms_ssim(a.clamp(0, 1), b, data_range=1.0, size_average=True, win_size=win)


def macs_per_pixel(model: RecurrentCodec, size=(64, 64)) -> dict:
    """Multiply-accumulates per pixel of one iteration (encoder, decoder), counted with hooks."""
    counts = {"enc": 0, "dec": 0}
    part = {"now": "enc"}
    hooks = []

    def hook(mod, inp, out):
        k = mod.weight[0].numel()
        counts[part["now"]] += out.numel() * k

    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and not name.startswith("context"):
            hooks.append(m.register_forward_hook(hook))
    x = torch.zeros(1, 3, *size)
    with torch.no_grad():
        st = [None] * 3
        model._encode_step(x, st)
        part["now"] = "dec"
        model._decode_step(torch.ones(1, model.bits, size[0] // 16, size[1] // 16), [None] * 4, None, None)
    for h in hooks:
        h.remove()
    px = size[0] * size[1]
    return {k: v / px for k, v in counts.items()}


__all__ = ["RecurrentCodec", "RECONSTRUCTIONS", "LOSSES", "CELLS", "PAPER", "macs_per_pixel"]
