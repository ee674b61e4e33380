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

import threading
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


#: Overrides every model's ``onednn_while_coding`` when not None.  Only ``benchmarks/onednn_decode.py``
#: sets it, to measure both backends on the same model.
ONEDNN_WHILE_CODING: bool | None = None


def onednn_while_coding(model) -> bool:
    """Whether ``model``'s compress/decompress run their convolutions with oneDNN (mkldnn) or with
    PyTorch's native CPU convolution (see :func:`coding`)."""
    if ONEDNN_WHILE_CODING is not None:
        return ONEDNN_WHILE_CODING
    return bool(getattr(model, "onednn_while_coding", False))


def coding(fn):
    """Decorator for compress/decompress: no autograd, and the convolution backend the model chose.

    The decoder's float arithmetic must not depend on the thread count: a file decodes to the same
    pixels on 1 thread or on 8.  Which CPU backend keeps its sums in the same order depends on the
    tensors' layout, measured with ``benchmarks/onednn_decode.py`` on two hosts (an Intel Xeon and an AMD
    EPYC, both with AVX-512):

    * channels-last transform models (``bmshj2018-hyperprior``, the attention models): oneDNN gave the
      same pixels and files as at 1 thread at every thread count tried (2 to 8), and is 1.4-2x faster; PyTorch's
      native convolution changed 9-20 samples of an attention-hyperprior decode between 1 and 2
      threads on the Intel host, and a bmshj2018-hyperprior decode at 4 or 8 threads on an AMD one.
      They set ``onednn_while_coding = True``.
    * the recurrent models (small NCHW convolutions): oneDNN changed a few samples between 1 and 2
      threads, the native convolution none.  They keep it (``onednn_while_coding = False``).

    The latents a decoder reads from a file never depend on either (the entropy models' tables and the
    hyperpriors run in integers), only the synthesized pixels' float rounding could; files written with
    ``--exact`` (every shipped model) synthesize in exact arithmetic on the CPU instead
    (:mod:`lic.layers.exact`), where neither backend nor instruction set can matter.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with _CODING:  # the backend switch is process-wide: threads that code take turns (see _CODING)
            previous = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = onednn_while_coding(model)
            try:
                with torch.no_grad():
                    return fn(model, *args, **kwargs)
            finally:
                torch.backends.mkldnn.enabled = previous

    return wrapper


#: Held by every compress/decompress call.  ``torch.backends.mkldnn.enabled`` is one switch for the whole
#: process, so two threads coding at once switched it under each other's feet: a decode ran on the other
#: backend (pixels off by one from the encoder's reconstruction) and the switch could stay off afterwards.
#: The calls of all threads now take turns; each one still uses all of torch's own threads.
_CODING = threading.RLock()


def check_synthesis(params: bytes, name: str) -> None:
    """A file's params for the models whose only setting is the synthesis: empty (float) or exact."""
    from ..container import PARAMS_EXACT_SYNTHESIS
    from ..errors import FormatError

    if params not in (b"", PARAMS_EXACT_SYNTHESIS):
        raise FormatError(f"corrupt .lic file: unknown synthesis setting {params.hex()} for {name}")


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
    #: whether compress/decompress use oneDNN convolutions rather than PyTorch's native ones (see ``coding``)
    onednn_while_coding: bool = False
    #: whether compress() takes ``exact=True``: a file whose synthesis runs in exact arithmetic (lic.layers.exact)
    exact_synthesis: bool = False

    def config(self) -> dict:
        """Constructor arguments, stored with the weights."""
        raise NotImplementedError

    def update(self) -> None:
        raise NotImplementedError

    def integer_coded_layers(self) -> list[nn.Module]:
        """The float layers whose integer copies (:mod:`lic.layers.integer`) the coder evaluates: ``lic train``
        keeps their weights within what those copies store (``keep_storable_``).  Collected from the submodules
        that name theirs (a hyperprior's h_s, a bit context model)."""
        return [layer for m in self.modules() if m is not self and hasattr(m, "integer_coded_layers")
                for layer in m.integer_coded_layers()]

    def refine_blocks(self, height: int, width: int, quality: int) -> int:
        """How many searches of ``refine`` steps each ``compress(..., refine=N)`` runs for an image of this size
        (for progress bars: each reports its steps): one per tile (:mod:`lic.models.refine`)."""
        from .refine import blocks

        return blocks(self, height, width)

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
