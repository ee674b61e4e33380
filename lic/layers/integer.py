"""Integer (fixed-point) evaluation of a small convolutional network.

Why: a hyperprior predicts the scale of every latent, and encoder and decoder
must pick *exactly* the same table scale or decoding fails.  Float
convolutions can differ in the last bit across machines and thread counts,
so lic evaluates the hyper-synthesis in fixed point (after Ballé, Johnston,
Minnen, "Integer networks for data compression with latent-variable models",
ICLR 2019, here applied post-training):

* weights are rounded to ``W_BITS`` fractional bits, activations to
  ``A_BITS`` fractional bits and clamped, so every product and every partial
  sum is an integer of magnitude < 2**53;
* the convolutions run in float64 on the CPU, where such integers are
  represented exactly, so the result is independent of summation order,
  BLAS, thread count or CPU;
* rescaling between layers is a floor division by a power of two (exact).

The same holds on a CUDA GPU in float64 with cuDNN switched off (PyTorch's own convolutions: products of
integers and their sums below 2**53, no FFT or Winograd transforms, no TF32 in float64), which
:meth:`IntegerNetwork.run_from` does when given one; lic only asks for it where a caller opts in
(:data:`lic.entropy.binary.CONTEXT_ON_DEVICE`).  Everything else runs these networks on the CPU.

The network is described as a list of ``Conv2d`` / ``ConvTranspose2d`` layers
with ReLU between them (none after the last).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

W_BITS = 12  # fractional bits of weights
A_BITS = 8  # fractional bits of activations and of the output
A_MAX = 2 ** 16  # activations are clamped to |a| < A_MAX (i.e. 256 in real units)
IN_MAX = 2 ** 15  # integer inputs are clamped to |z| <= IN_MAX
W_LIMIT = 8 - 2 ** -8  # the largest |weight| training keeps: below 2**15 / 2**W_BITS = 8 (int16 at W_BITS)
# also after the fp16 rounding of export (the largest fp16 number below 8; 7.999 would round up to 8)


def check_storable(w_q: torch.Tensor) -> None:
    """``w_q``: weights in units of 2**-W_BITS; refuses those beyond the int16 the integer copies store."""
    if float(w_q.abs().max()) >= 2 ** 15:
        raise ValueError("a weight beyond ±8, more than the integer copy stores (lic train keeps such weights "
                         "within it)")


@torch.no_grad()
def keep_storable_(layers) -> None:
    """Clamps the weights of float ``layers`` whose integer copies the coder evaluates to ±W_LIMIT, in place.

    ``lic train`` applies it after every optimizer step (a projection: weights inside the range are untouched),
    so training can never produce weights that ``update()`` cannot turn into coding tables (docs/training.md:
    toderici2017-rnn's eleventh CPU round)."""
    for layer in layers:
        layer.weight.clamp_(-W_LIMIT, W_LIMIT)


def _check_bounds(w_q: torch.Tensor, fan_in: int, in_max: int) -> None:
    bound = float(w_q.abs().max()) * in_max * fan_in
    if bound >= 2 ** 52:
        raise ValueError("integer network would overflow exact float64 range")


def exact_kernels(device: torch.device):
    """Context for integer convolutions in float64 on ``device``: on a CUDA GPU, cuDNN off (its algorithm
    choice could include transforms that round); on the CPU, nothing to change."""
    import contextlib

    if torch.device(device).type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


class IntegerNetwork(nn.Module):
    """Fixed-point copy of a conv/ReLU stack; built with :meth:`from_float`."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.kinds = []
        for i, layer in enumerate(layers):
            w = torch.zeros_like(layer.weight, dtype=torch.int16)
            b = torch.zeros_like(layer.bias, dtype=torch.int64)
            self.register_buffer(f"w{i}", w)
            self.register_buffer(f"b{i}", b)
            self.kinds.append((isinstance(layer, nn.ConvTranspose2d), layer.stride[0], layer.padding[0],
                               getattr(layer, "output_padding", (0,))[0]))

    @torch.no_grad()
    def load_from(self, layers: list[nn.Module]) -> None:
        for i, layer in enumerate(layers):
            in_bits = 0 if i == 0 else A_BITS
            w_q = torch.round(layer.weight.detach().double().cpu() * 2 ** W_BITS)
            b_q = torch.round(layer.bias.detach().double().cpu() * 2 ** (W_BITS + in_bits))
            k = layer.weight[0].numel() if not self.kinds[i][0] else layer.weight.shape[0] * layer.weight[0, 0].numel()
            check_storable(w_q)
            _check_bounds(w_q, k, IN_MAX if i == 0 else A_MAX)
            getattr(self, f"w{i}").copy_(w_q.to(torch.int16))
            getattr(self, f"b{i}").copy_(b_q.to(torch.int64))

    @torch.no_grad()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: integer-valued tensor. Returns the output in units of 2**-A_BITS (float64 holding integers), on the
        CPU, whatever device the model is on."""
        return self.run_from(0, z.detach().to("cpu", torch.float64).clamp(-IN_MAX, IN_MAX))

    def layer_weights(self, i: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``i``'s integer weights and bias as float64 (exact) on ``device`` (default the CPU)."""
        dev = torch.device("cpu") if device is None else torch.device(device)
        return getattr(self, f"w{i}").to(dev, torch.float64), getattr(self, f"b{i}").to(dev, torch.float64)

    def rescale(self, i: int, acc: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s accumulator (W_BITS + its input's fractional bits) -> its output in units of 2**-A_BITS,
        with the ReLU and bounds of that layer; exact (a floor division by a power of two, then a clamp)."""
        in_bits = 0 if i == 0 else A_BITS
        x = torch.div(acc, 2.0 ** (W_BITS + in_bits - A_BITS), rounding_mode="floor")
        if i < len(self.kinds) - 1:
            return x.clamp(0, A_MAX - 1)  # ReLU, and the bound that keeps sums exact
        return x.clamp(-A_MAX + 1, A_MAX - 1)

    @torch.no_grad()
    def run_from(self, start: int, x: torch.Tensor, device=None) -> torch.Tensor:
        """Layers ``start``.. on ``x`` (float64 integers on ``device``: the network's input for ``start`` = 0,
        else the output of layer ``start - 1``).  A caller that assembles layer 0's accumulator itself (a sum of
        integer parts, exact in any grouping) continues with ``run_from(1, rescale(0, acc))``."""
        dev = x.device if device is None else torch.device(device)
        for i in range(start, len(self.kinds)):
            transposed, stride, pad, out_pad = self.kinds[i]
            w, b = self.layer_weights(i, dev)
            with exact_kernels(dev):
                if transposed:
                    acc = F.conv_transpose2d(x, w, b, stride=stride, padding=pad, output_padding=out_pad)
                else:
                    acc = F.conv2d(x, w, b, stride=stride, padding=pad)
            x = self.rescale(i, acc)  # acc has W_BITS + in_bits fractional bits; bring it to A_BITS exactly
        return x


def fingerprint(layers) -> torch.Tensor:
    """SHA-256 of the float weights (and biases) of ``layers``, as 32 uint8: stored beside an integer
    copy of those layers, so a model can tell that its integer network is stale (no forgotten update())."""
    import hashlib

    h = hashlib.sha256()
    for m in layers:
        h.update(m.weight.detach().cpu().float().numpy().tobytes())
        if m.bias is not None:
            h.update(m.bias.detach().cpu().float().numpy().tobytes())
    return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8).clone()


def log_scale_thresholds() -> torch.Tensor:
    """The Gaussian scale table's boundaries in log σ, in the integer network's output units (2**-A_BITS):
    bucketizing an integer log σ against them gives a scale index that is exact on every machine."""
    import math

    from ..entropy.gaussian import log_scale_thresholds as float_thresholds

    return torch.tensor([math.floor(t * 2 ** A_BITS) for t in float_thresholds()], dtype=torch.int64)
