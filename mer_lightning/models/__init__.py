"""Models: per-frame backbone -> temporal head -> classifier, in one LightningModule."""
