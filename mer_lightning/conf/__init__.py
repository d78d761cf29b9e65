"""The Hydra configs (a package so that entry points find them as `pkg://mer_lightning.conf` from any directory)."""
