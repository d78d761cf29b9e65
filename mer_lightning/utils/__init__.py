"""Small utilities with one job each: errors, resolvers, instantiation, printing, W&B setup."""

from mer_lightning.utils.errors import MERError

__all__ = ["MERError"]
