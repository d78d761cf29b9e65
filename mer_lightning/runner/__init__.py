"""The runner: a protocol's folds built (`folds.py`), trained as `runner.selection` says (`fold.py`,
`selection.py`), in parallel when asked (`parallel.py`), resumed (`store.py`, with the checks of
`fingerprint.py` and `checkpoints.py`), pooled with the classical reference beside them
(`reference.py`, `run.py`: `run_protocol`).

Nothing is imported here: Lightning must be imported after Hydra has configured logging (it keeps
its own console handler otherwise), so entry points import `mer_lightning.runner.run` when they run.
"""
