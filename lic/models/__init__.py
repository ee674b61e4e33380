"""Model architectures, one module per paper family."""

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


def build(config: dict) -> CompressionModel:
    cfg = dict(config)
    arch = cfg.pop("arch")
    return ARCHITECTURES[arch](**cfg)


__all__ = ["CompressionModel", "Compressed", "ScaleHyperprior", "RecurrentCodec", "ScalableRecurrentCodec", "AttentionCodec",
           "ARCHITECTURES", "arch_for", "config_for", "build"]
