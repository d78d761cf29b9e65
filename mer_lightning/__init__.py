"""mer_lightning: leak-free micro-expression recognition experiments (Lightning + Hydra)."""

__version__ = "0.1.0"
