"""Model architectures, one module per paper family."""

from .base import CompressionModel, Compressed
from .hyperprior import ScaleHyperprior

ARCHITECTURES = {"ScaleHyperprior": ScaleHyperprior}


def build(config: dict) -> CompressionModel:
    cfg = dict(config)
    arch = cfg.pop("arch")
    return ARCHITECTURES[arch](**cfg)


__all__ = ["CompressionModel", "Compressed", "ScaleHyperprior", "ARCHITECTURES", "build"]
