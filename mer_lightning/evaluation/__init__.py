"""Evaluation: metrics (torchmetrics), protocols over folds, and reports."""
