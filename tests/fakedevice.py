"""A second device simulated on the CPU, to test that coding works with a model moved to a GPU.

This project's CI has no GPU, yet ``model.to("cuda")`` followed by ``compress``/``decompress`` must work: the
networks run on the model's device while the coding state (integer networks, tables, constriction) stays on
the CPU.  The mistakes that break it are all of one kind (a tensor on one device meets one on the other, or a
device tensor reaches numpy), and those can be caught without a GPU:

:class:`FakeDevice` is a torch function mode.  Inside it, ``torch.device("cuda")`` names a simulated device:
a tensor "on" it is an ordinary CPU tensor whose storage the mode has tagged.  ``.to("cuda")``, ``.cuda()`` and
factories with ``device="cuda"`` make tagged copies, ``.cpu()`` / ``.to("cpu")`` untagged ones, ``.device``
reports the tag, every other operation tags its outputs when its inputs are tagged, and the mode raises where
CUDA would: an operation mixing tagged and untagged tensors (an untagged 0-dim tensor, a CPU scalar, is
allowed, as CUDA allows it), or ``.numpy()`` of a tagged tensor.  Copies (``copy_``, ``__setitem__``) may
cross, as they may between devices.

What it cannot show: a GPU's own arithmetic (its pixels, its speed).  ``benchmarks/device_speed.py`` measures
those on a real one.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

FAKE = torch.device("cuda", 0)
CPU = torch.device("cpu")

_DEVICE_GET = torch.Tensor.device.__get__
_TO = torch.Tensor.to
_MOVES_CPU = {torch.Tensor.cpu}
_MOVES_FAKE = {torch.Tensor.cuda}
_CROSSING = {torch.Tensor.copy_, torch.Tensor.__setitem__}
_GETITEM = torch.Tensor.__getitem__
_NUMPY = {torch.Tensor.numpy, torch.Tensor.__array__}
_HARMLESS = {torch.Tensor.untyped_storage, torch.Tensor.data_ptr, torch.Tensor.dim, torch.Tensor.numel,
             torch.Tensor.size, torch.Tensor.is_contiguous, torch.Tensor.element_size, torch.Tensor.stride,
             torch._has_compatible_shallow_copy_type, torch.Tensor.data.__set__}


class DeviceMismatch(RuntimeError):
    pass


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _is_fake(device) -> bool:
    if device is None:
        return False
    return torch.device(device).type == "cuda"


class FakeDevice(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self._tagged: dict[int, object] = {}  # storage address -> storage (kept alive: an address is never reused)
        self.crossings = 0  # copies between the devices (what a real GPU would transfer)

    # -- tags -------------------------------------------------------------------------------------
    def on_fake(self, t: torch.Tensor) -> bool:
        s = t.untyped_storage()
        return s.nbytes() > 0 and s.data_ptr() in self._tagged

    def _tag(self, out, inputs=()):
        shared = {t.untyped_storage().data_ptr() for t in inputs if not self.on_fake(t)}
        for t in _tensors(out):
            s = t.untyped_storage()
            if s.nbytes() == 0:
                continue
            if s.data_ptr() in shared:  # a view of an untagged input: not ours to move
                raise DeviceMismatch("simulated device: an output shares memory with a CPU input")
            self._tagged[s.data_ptr()] = s
        return out

    def _fresh(self, t: torch.Tensor, inputs) -> torch.Tensor:
        """``t`` if it owns new memory, else a copy (moving never aliases across devices)."""
        if any(t.untyped_storage().data_ptr() == i.untyped_storage().data_ptr() for i in inputs):
            return t.clone()
        return t

    # -- the mode ---------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func == _DEVICE_GET:
            return FAKE if self.on_fake(args[0]) else CPU
        inputs = list(_tensors((args, kwargs)))
        if func in _HARMLESS:
            return func(*args, **kwargs)
        if func in _NUMPY and any(self.on_fake(t) for t in inputs):
            raise DeviceMismatch("simulated device: can't convert cuda:0 device type tensor to numpy; "
                                 "use Tensor.cpu() first")
        if func is _TO or func in _MOVES_CPU or func in _MOVES_FAKE:
            return self._move(func, args, kwargs)
        fake_target = _is_fake(kwargs.get("device"))
        if fake_target:
            kwargs["device"] = CPU
        if func is _GETITEM:  # a device tensor may be indexed with CPU indexes, not the reverse
            if not self.on_fake(args[0]) and any(self.on_fake(t) for t in inputs[1:]):
                raise DeviceMismatch("simulated device: a cpu tensor indexed with cuda:0 indexes")
            out = func(*args, **kwargs)
            return self._tag(out, []) if self.on_fake(args[0]) else out
        if func not in _CROSSING:
            fake = [t for t in inputs if self.on_fake(t)]
            cpu = [t for t in inputs if not self.on_fake(t) and t.dim() > 0]
            if fake and cpu:
                raise DeviceMismatch(f"simulated device: {getattr(func, '__name__', func)} got tensors on cuda:0 "
                                     f"and on cpu")
        out = func(*args, **kwargs)
        if func in _CROSSING:
            self.crossings += 1
            return out
        if fake_target or any(self.on_fake(t) for t in inputs):
            return self._tag(out, inputs)
        return out

    def _move(self, func, args, kwargs):
        src = args[0]
        if func in _MOVES_CPU:
            target = CPU
            out = func(*args, **kwargs)
        elif func in _MOVES_FAKE:
            target = FAKE
            out = src.clone()
        else:
            if len(args) > 1 and isinstance(args[1], torch.Tensor):  # .to(other): its device and dtype
                device, dtype = (FAKE if self.on_fake(args[1]) else CPU), args[1].dtype
                non_blocking, memory_format = kwargs.get("non_blocking", False), None
            else:
                device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args[1:], **kwargs)
            target = None if device is None else (FAKE if _is_fake(device) else CPU)
            out = src.to(dtype=dtype or src.dtype, non_blocking=non_blocking,
                         memory_format=memory_format or torch.preserve_format)
        if target is None:  # a dtype / layout change: stays where it is
            return self._tag(out, [src]) if self.on_fake(src) else out
        if (target == FAKE) == self.on_fake(src):  # no move: a dtype change (if any) stays where it was
            return self._tag(out, [src]) if self.on_fake(src) else out
        self.crossings += 1
        out = self._fresh(out, [src])
        return self._tag(out) if target == FAKE else out
