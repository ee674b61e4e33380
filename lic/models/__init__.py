"""Model architectures, one module per paper family."""

from .base import CompressionModel, Compressed
from .hyperprior import ScaleHyperprior
from .recurrent import RecurrentCodec

ARCHITECTURES = {"ScaleHyperprior": ScaleHyperprior, "RecurrentCodec": RecurrentCodec}


def arch_for(name: str) -> str:
    """Architecture key for a model name ('toderici2017-rnn') or an architecture key itself."""
    for arch, cls in ARCHITECTURES.items():
        if name in (arch, cls.name):
            return arch
    raise KeyError(name)


def build(config: dict) -> CompressionModel:
    cfg = dict(config)
    arch = cfg.pop("arch")
    return ARCHITECTURES[arch](**cfg)


__all__ = ["CompressionModel", "Compressed", "ScaleHyperprior", "RecurrentCodec", "ARCHITECTURES", "arch_for", "build"]
