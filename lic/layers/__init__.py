"""Building blocks shared by the models."""

from .gdn import GDN, IGDN
from .integer import IntegerNetwork

__all__ = ["GDN", "IGDN", "IntegerNetwork"]
