"""The runner: a protocol's folds trained, resumed and tested (`run.py`), one fold at a time
(`fold.py`), with the resume store (`store.py`) and its checks (`fingerprint.py`, `checkpoints.py`)."""

from mer_lightning.runner.run import run_protocol

__all__ = ["run_protocol"]
