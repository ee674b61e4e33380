"""Shipped models: weights as safetensors inside the package, loaded offline.

A weights file holds fp16 parameters, integer coding tables, and metadata
(``name``, ``config`` as JSON, a short ``card``).  Its *digest* (8 bytes of a
SHA-256 over the canonical tensors) goes into every ``.lic`` header, so a file
made with other weights is refused by name instead of decoded into garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import DEFAULT_MODEL  # noqa: F401  (defined once, in lic/__init__.py; lic.zoo.DEFAULT_MODEL stays)
from .errors import ModelError
from .files import new_file_mode
from .models import CompressionModel, build

WEIGHTS_DIR = Path(__file__).parent / "weights"


def state_digest(state: dict[str, torch.Tensor]) -> bytes:
    """8-byte digest of a state dict; float tensors are hashed as fp16 (how they are shipped)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float16)
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        # reshape(-1) first: a channels-last 1×1 convolution weight counts as contiguous yet keeps a
        # stride ≠ 1 on its last (size-1) dimension, which view(uint8) refuses; the bytes are the same
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()[:8]


def model_digest(model: CompressionModel) -> bytes:
    cached = getattr(model, "_lic_digest", None)
    if cached is not None and not model.training:
        return cached
    return state_digest(model.state_dict())


def prepare_for_export(model: CompressionModel) -> None:
    """Round float weights to fp16 (as shipped), then rebuild the tables from exactly those weights."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.update()


def save_weights(model: CompressionModel, path: str | Path, name: str, card: str = "", extra: dict | None = None) -> bytes:
    prepare_for_export(model)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    meta = {"name": name, "config": json.dumps(model.config()), "card": card}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    mode = new_file_mode(Path(path))
    save_file(state, str(path), metadata=meta)
    _sort_header(Path(path))
    os.chmod(path, mode)  # the safetensors writer makes every file private (0600)
    return state_digest(state)


def _sort_header(path: Path) -> None:
    """Rewrite the safetensors JSON header with sorted keys, so that the same weights always give the same
    bytes (the writer orders its metadata differently from call to call); tensor offsets do not change."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta is not None else {}) | dict(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # never expected (same content); keep the writer's bytes rather than move the tensors
        return
    path.write_bytes(raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])


def read_metadata(path: str | Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except SafetensorError as exc:  # a file that is not safetensors (an image, a checkpoint, junk)
        hint = ""
        if str(path).lower().endswith(".pt"):  # lic train writes the weights beside its checkpoint
            hint = f"; {Path(path).name} is a training checkpoint: its weights are {Path(path).parent / 'model.safetensors'}"
        raise ModelError(f"cannot load weights {path}: not a safetensors weights file ({exc}){hint}") from None


def shipped() -> dict[str, Path]:
    """Installed model name -> weights path."""
    out = {}
    for p in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        out[read_metadata(p).get("name", p.stem)] = p
    return out


def load_weights(path: str | Path, device: str = "cpu") -> CompressionModel:
    path = Path(path)
    try:
        meta = read_metadata(path)
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
        model = build(json.loads(meta["config"]))
    except (OSError, KeyError, ValueError, json.JSONDecodeError, SafetensorError) as exc:
        raise ModelError(f"cannot load weights {path}: {exc}") from None
    digest = state_digest(state)
    model.load_state({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    model.eval().to(device)
    model.lic_name = meta.get("name", path.stem)
    model.card = meta.get("card", "")
    model.meta = meta
    model._lic_digest = digest
    if not model.tables_current():
        raise ModelError(f"weights {path} carry stale coding tables; re-export them with lic.zoo.save_weights")
    return model


@lru_cache(maxsize=8)
def _load_cached(path: str, stamp: tuple[int, int], device: str) -> CompressionModel:
    return load_weights(path, device)


def _cached(path: Path, device: str = "cpu") -> CompressionModel:
    """Loaded once per file *version* and device: a weights file rewritten in place (a training run's export)
    is read again."""
    st = path.stat()
    with _LOADING:  # threads asking for the same model at once get one copy, loaded once
        return _load_cached(str(path), (st.st_mtime_ns, st.st_size), device)


_LOADING = threading.Lock()


def check_device(device: str | torch.device | None) -> str:
    """The device a model runs its networks on, as a canonical string ("cpu", "cuda", "cuda:1"; "mps" is
    accepted but has not been tried); a one-line ModelError when this torch cannot use it.  Coding (integer
    networks, tables, the entropy coder) stays on the CPU whatever the device: files do not depend on it."""
    if device is None:
        return "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelError(f"unknown device '{device}' (try cpu, cuda, cuda:1 or mps)") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device '{device}' is not available: this torch ({torch.__version__}) sees no CUDA GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelError(f"device '{device}' is not available: {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ModelError(f"device '{device}' is not available: this torch sees no Apple GPU (MPS)")
    else:
        raise ModelError(f"device '{device}' is not supported (try cpu, cuda, cuda:1 or mps)")
    return str(dev)


def load_model(name: str | Path = DEFAULT_MODEL, device: str | torch.device | None = None) -> CompressionModel:
    """A shipped model by name, or a weights file by path; ``device``: where its networks run (default the CPU;
    see :func:`check_device`).  The same model object is returned for the same file and device."""
    device = check_device(device)
    s = str(name)
    models = shipped()
    if s in models:  # an installed name is that model, even where a file of that name lies in the current folder
        return _cached(Path(models[s]), device)
    if s.endswith(".safetensors") or Path(s).is_file():
        if not Path(s).is_file():
            raise ModelError(f"weights file not found: {s}")
        return _cached(Path(s).resolve(), device)
    known = ", ".join(models) or "none installed"
    raise ModelError(f"unknown model '{s}' (available: {known})")


def load_installed(name: str, device: str | torch.device | None = None) -> CompressionModel:
    """An installed model by name only, never a path: what a file's header names (a header is data, and must not
    make lic read a weights file of the header's choosing)."""
    if name not in shipped():
        raise ModelError(f"model '{name}' is not installed")
    return load_model(name, device)
