"""Model architectures, one module per paper family."""

import inspect
import math

from .base import CompressionModel, Compressed
from .hyperprior import ScaleHyperprior
from .recurrent import RecurrentCodec
from .scalable import ScalableRecurrentCodec
from .attention import AttentionCodec

ARCHITECTURES = {
    "ScaleHyperprior": ScaleHyperprior,  # Ballé et al. 2018
    "RecurrentCodec": RecurrentCodec,  # Toderici et al. 2017
    "ScalableRecurrentCodec": ScalableRecurrentCodec,  # Su et al. 2020
    "AttentionCodec": AttentionCodec,  # attention autoencoder (GDN residual blocks, sub-pixel up-sampling)
}


def arch_for(name: str) -> str:
    """Architecture key for a model name ('toderici2017-rnn') or an architecture key itself."""
    for arch, cls in ARCHITECTURES.items():
        if name in (arch, cls.name) or name in getattr(cls, "variants", {}):
            return arch
    raise KeyError(name)


def config_for(name: str) -> dict:
    """Constructor config of a trainable name: the architecture key, plus the arguments of a named
    variant ('attention-hyperprior' -> {"arch": "AttentionCodec", "entropy": "hyperprior"})."""
    arch = arch_for(name)
    return {"arch": arch, **getattr(ARCHITECTURES[arch], "variants", {}).get(name, {})}


_WHOLE = "a whole number >= 1"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_config(config: dict) -> None:
    """Check a configuration's values against the types of the constructor's defaults (ValueError names the
    first wrong one), so that a hand-written one (``lic train --config``) is refused in one line instead of
    failing inside a layer: widths, counts and kernel sizes are whole numbers >= 1, λ positive, loss weights
    finite and >= 0, switches true/false."""
    cls = ARCHITECTURES.get(config.get("arch"))
    if cls is None:
        raise ValueError(f"unknown architecture {config.get('arch')!r} (known: {', '.join(ARCHITECTURES)})")
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    for key, v in config.items():
        if key == "arch" or key not in defaults:
            continue  # an unknown key is refused by the constructor, which names it
        d = defaults[key]
        if key == "lambdas":
            if not (isinstance(v, (list, tuple)) and v and all(_is_number(x) and x > 0 for x in v)):
                raise ValueError(f"'lambdas' takes a non-empty list of positive numbers, got {v!r}")
        elif isinstance(d, bool):
            if not isinstance(v, bool):
                raise ValueError(f"{key!r} takes true or false, got {v!r}")
        elif isinstance(d, int) or (d is None and key.endswith("_N")):
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"{key!r} takes {_WHOLE}, got {v!r}")
        elif isinstance(d, float):
            if not (_is_number(v) and (v > 0 if key == "rate_weight" else v >= 0)):
                raise ValueError(f"{key!r} takes a finite number {'> 0' if key == 'rate_weight' else '>= 0'}, "
                                 f"got {v!r}")
        elif isinstance(d, tuple):
            if not isinstance(v, (list, tuple)) or not v:
                raise ValueError(f"{key!r} takes a non-empty list, got {v!r}")
            whole = bool(d) and isinstance(d[0], int)
            for x in v:
                if whole and not (isinstance(x, int) and not isinstance(x, bool) and x >= 1):
                    raise ValueError(f"{key!r} takes a list of whole numbers >= 1, got {v!r}")
                if not whole and not _is_number(x):
                    raise ValueError(f"{key!r} takes a list of finite numbers, got {v!r}")
        elif isinstance(d, str) or (d is None and key != "hyper_N"):
            if not isinstance(v, str) and not (d is None and v is None):
                raise ValueError(f"{key!r} takes a name (a string), got {v!r}")


def build(config: dict) -> CompressionModel:
    cfg = dict(config)
    arch = cfg.pop("arch")
    return ARCHITECTURES[arch](**cfg)


__all__ = ["CompressionModel", "Compressed", "ScaleHyperprior", "RecurrentCodec", "ScalableRecurrentCodec", "AttentionCodec",
           "ARCHITECTURES", "arch_for", "config_for", "build",
           "check_config"]
