"""The recurrent encoder and decoder that both recurrent codecs are built around: the progressive
binary codec of Toderici et al. 2017 (:mod:`lic.models.recurrent`) and the scalable codec with
quantized latents of Su et al. 2020 (:mod:`lic.models.scalable`).  They differ in what lies between
the two (a binarizer, or a gain, rounding and a hyperprior), not in the trunks::

    encoder:  r ─ enc_stem (conv 3×3 /2) ─ cell /2 ─ cell /2 ─ cell /2 ─► e      (16× down; the codec's
                                                                                  1×1 head follows)
    decoder:  code ─ dec_stem (1×1) ─ [cell ─ depth-to-space ×2] × 4 ─ dec_out (1×1) ─ tanh / 2 ─► update

Each cell keeps its state from one iteration (layer) to the next (:mod:`lic.layers.convrnn`).  The
modules stay attributes of the codec (``enc_stem``, ``enc_rnn``, ``dec_stem``, ``dec_rnn``,
``dec_out``), so the weights files name them as before.  The decoder also runs as an exact twin
(:func:`exact_decoder`, :mod:`lic.layers.exact`) for files that ask for the same pixels on every machine.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers.convrnn import make_cell, pixel_shuffle


def build_encoder(cell: str, channels, kernel: int, hidden_kernel: int) -> tuple[nn.Conv2d, nn.ModuleList]:
    """(enc_stem, enc_rnn) for encoder widths ``channels`` = (e0, e1, e2, e3)."""
    e0, e1, e2, e3 = channels
    stem = nn.Conv2d(3, e0, 3, 2, 1)
    cells = nn.ModuleList([make_cell(cell, ci, co, kernel, 2, hidden_kernel)
                           for ci, co in ((e0, e1), (e1, e2), (e2, e3))])
    return stem, cells


def build_decoder(cell: str, code: int, channels, kernel: int,
                  hidden_kernels) -> tuple[nn.Conv2d, nn.ModuleList, nn.Conv2d]:
    """(dec_stem, dec_rnn, dec_out) for ``code`` input channels and decoder widths (d0, .., d4); the output
    starts small (a grey first estimate, then small corrections)."""
    d0, d1, d2, d3, d4 = channels
    stem = nn.Conv2d(code, d0, 1)
    cells = nn.ModuleList([make_cell(cell, ci, co, kernel, 1, hk) for ci, co, hk in
                           ((d0, d1, hidden_kernels[0]), (d1 // 4, d2, hidden_kernels[1]),
                            (d2 // 4, d3, hidden_kernels[2]), (d3 // 4, d4, hidden_kernels[3]))])
    out = nn.Conv2d(d4 // 4, 3, 1)
    with torch.no_grad():
        out.weight.mul_(0.1)
        out.bias.zero_()
    return stem, cells, out


def run_encoder(model: nn.Module, r: torch.Tensor, states: list) -> torch.Tensor:
    """One iteration of the encoder trunk on the residual ``r``; ``states`` is updated in place."""
    e = model.enc_stem(r)
    for i, cell in enumerate(model.enc_rnn):
        e, states[i] = cell(e, states[i])
    return e


def run_decoder(parts: nn.Module, code: torch.Tensor, states: list, exact: bool = False) -> torch.Tensor:
    """One iteration of the decoder trunk: the image update in (-½, ½) for ``code`` (the codec's bits or its
    rescaled latents); ``states`` is updated in place.  ``parts``: the codec, or its exact twin
    (:func:`exact_decoder`; then ``exact`` and ``code`` is float64 on the CPU)."""
    d = parts.dec_stem(code)
    for i, cell in enumerate(parts.dec_rnn):
        d, states[i] = cell(d, states[i])
        d = pixel_shuffle(d)
    if exact:
        from ..layers.exact import tanh

        return tanh(parts.dec_out(d)) / 2
    return torch.tanh(parts.dec_out(d).float()) / 2  # x̂ accumulates in fp32, also under bf16 autocast


def exact_decoder(model: nn.Module, **extra: nn.Module) -> nn.Module:
    """The decoder trunk (and ``extra`` modules the decoder also runs) as an exact twin on the CPU
    (:func:`lic.layers.exact.exact_copy`)."""
    from ..layers.exact import exact_copy

    parts = nn.ModuleDict({"dec_stem": model.dec_stem, "dec_rnn": model.dec_rnn, "dec_out": model.dec_out, **extra})
    return exact_copy(parts).cpu()


__all__ = ["build_encoder", "build_decoder", "run_encoder", "run_decoder", "exact_decoder"]
