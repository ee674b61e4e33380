"""The contract every lic model keeps.

* ``forward(x, quality)`` -> ``{"x_hat": ..., "likelihoods": {name: tensor}}`` for training
  (noisy quantization) and for rate estimates in eval mode (the probabilities
  the coder will really use).
* ``compress(x, quality)`` -> :class:`Compressed` (a list of byte chunks and
  model parameters); ``decompress(chunks, height, width, quality, params)`` ->
  image tensor.  Both take/return ``(1, 3, H, W)`` tensors in [0, 1] of *any*
  size: models pad internally and crop back.
* ``update()`` builds integer coding tables from the weights.  It is not a
  step a user can forget: ``compress`` calls it when the tables are stale,
  and shipped weights carry their tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Compressed:
    chunks: list[bytes]
    params: bytes = b""
    x_hat: torch.Tensor | None = None  # the encoder's own reconstruction, when asked for
    extra: dict = field(default_factory=dict)


#: Whether compress/decompress may use oneDNN convolutions.  Off: see :func:`coding`.  Only
#: ``benchmarks/onednn_decode.py`` turns it on, to measure what that would change.
ONEDNN_WHILE_CODING = False


def coding(fn):
    """Decorator for compress/decompress: no autograd, and no oneDNN convolutions.

    oneDNN was seen to pick different fp32 convolution algorithms for
    different thread counts (on contiguous NCHW tensors), so the synthesized
    pixels could differ by one code value between a 1-thread and a 2-thread
    decode.  PyTorch's native convolution gives identical results at 1 and 2
    threads (tested).  ``benchmarks/onednn_decode.py`` measures both on the
    channels-last transform models: there oneDNN is about 2x faster, and at 8
    threads the native convolution, not oneDNN, changed one sample.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = ONEDNN_WHILE_CODING
        try:
            with torch.no_grad():
                return fn(*args, **kwargs)
        finally:
            torch.backends.mkldnn.enabled = previous

    return wrapper


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom/right edges to a multiple of ``multiple`` (cheaper to code than zeros)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


class CompressionModel(nn.Module):
    #: quality levels accepted by compress(), e.g. [1, 2, ..., 6]
    qualities: list[int] = []
    default_quality: int = 1
    progressive: bool = False
    #: what one chunk of a progressive model is called in messages ("iterations", "layers")
    prefix_unit: str = "layers"
    #: whether compress() takes ``refine=N`` (encoder-side latent search, lic.models.refine)
    refinable: bool = False

    def config(self) -> dict:
        """Constructor arguments, stored with the weights."""
        raise NotImplementedError

    def update(self) -> None:
        raise NotImplementedError

    def tables_current(self) -> bool:
        raise NotImplementedError

    def ensure_tables(self) -> None:
        if not self.tables_current():
            self.update()

    def check_quality(self, quality: int) -> int:
        if quality not in self.qualities:
            from ..errors import ModelError

            raise ModelError(f"quality {quality} not available (choose from {self.qualities[0]}..{self.qualities[-1]})")
        return quality

    def upgrade_state(self, state: dict) -> dict:
        """A state dict saved by an earlier layout of this model, under today's names (default: as is)."""
        return state

    def load_state(self, state: dict) -> None:
        """load_state_dict that also accepts coding tables of another size than the empty defaults,
        and weights saved under an earlier layout (:meth:`upgrade_state`)."""
        state = self.upgrade_state(state)
        own = dict(self.named_buffers())
        for name, value in state.items():
            if name in own and own[name].shape != value.shape:
                mod_name, _, attr = name.rpartition(".")
                mod = self.get_submodule(mod_name) if mod_name else self
                setattr(mod, attr, torch.empty_like(value, device=own[name].device))
        self.load_state_dict(state)

    def rate_label(self, quality: int) -> str:
        return f"q{quality}"

    def check_prefix(self, chunks: list[bytes], quality: int, unit: str) -> None:
        """Progressive models decode any 1..quality leading chunks (``unit``: 'iteration' or 'layer')."""
        from ..errors import FormatError

        self.check_quality(quality)
        if not chunks:
            raise FormatError(f"truncated .lic file: not even the first {unit} is complete")
        if len(chunks) > quality:
            raise FormatError(f"corrupt .lic file: {len(chunks)} data chunks for {quality} {unit}s")


def crop_centred(x_hat: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A reconstruction centred on 0 (the recurrent codecs' domain) -> the [0, 1] image, cropped, on the CPU."""
    return (x_hat[..., :h, :w] + 0.5).clamp(0, 1).cpu()
