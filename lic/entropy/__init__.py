"""Entropy models (densities for training, integer tables for coding) and the coder."""

from .factorized import FactorizedPrior
from .gaussian import GaussianConditional

__all__ = ["FactorizedPrior", "GaussianConditional"]
