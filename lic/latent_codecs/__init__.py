"""Latent codecs: how a latent tensor ŷ becomes byte chunks and comes back (as in CompressAI's layout).

A latent codec owns its entropy models and any side information: a model's analysis transform hands
it ``y``; it quantizes, codes and returns ``ŷ`` for the synthesis transform.  Every codec keeps one
contract:

* ``forward(y) -> (ŷ, {name: likelihoods})`` for training (noisy quantization) and, in eval mode,
  the likelihoods of the tables the coder will really use;
* ``compress(y) -> (chunks, ŷ, ideal_bits)`` and ``decompress(chunks, shape) -> ŷ``;
* ``update()`` / ``tables_current()`` for the integer coding tables;
* ``multiple``: the spatial multiple ``y`` must have (the hyperprior down-samples it 4× more),
  ``chunks``: how many byte chunks it writes.
"""

from .factorized import FactorizedLatentCodec
from .hyperprior import HyperpriorLatentCodec

__all__ = ["FactorizedLatentCodec", "HyperpriorLatentCodec"]
