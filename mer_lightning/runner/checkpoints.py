"""Which checkpoint a fold may use: its own, made with a configuration that gives the same fold.

Every checkpoint written by `train` carries `mer`: its fold index and test subjects, the class
names, the data / model / protocol configs and the fingerprint (`fingerprint.py`). A checkpoint
is only ever applied to the fold whose test subjects it records: resuming fold 0 from a model that
trained on fold 0's test subject would leak it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from mer_lightning.data.splits import Fold
from mer_lightning.runner.fingerprint import SAME_FOLD, check_same
from mer_lightning.runner.folds import fold_folder
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)


def read_meta(path: str | Path) -> dict:
    """The `mer` record of a checkpoint written by `mer_lightning.train`."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise MERError(f"{path} cannot be read as a checkpoint ({type(err).__name__}: "
                       f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    if not isinstance(checkpoint, dict) or "mer" not in checkpoint:
        raise MERError(f"{path} was not written by mer_lightning.train (no fold information in it)")
    return checkpoint["mer"]


def load_weights(model, path: str | Path):
    """The checkpoint's weights into `model` (testing a saved model: no trainer state, callbacks or
    optimizer to restore, so none of Lightning's warnings about them)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["state_dict"])
    return model


def saved_epoch(path: str | Path) -> int:
    """The epoch a checkpoint was saved at (0-based: the epoch that had just ended)."""
    return int(torch.load(path, map_location="cpu", weights_only=True).get("epoch", -1))


def check_fold(path: str | Path, meta: dict, fold: Fold, current: dict, only: tuple[str, ...] = (),
               fix: str = "Use the configuration it was trained with (see the run's config.yaml), or train anew.") -> None:
    """Refuse a checkpoint of another fold, or of a configuration that gives other samples/inputs."""
    if list(meta.get("test_subjects", [])) != list(fold.test_subjects):
        raise MERError(f"{path} belongs to fold {meta.get('fold')} (test: {', '.join(meta.get('test_subjects', []))}), "
                       f"not {fold.name}: its model may have trained on this fold's test subjects. Give each fold "
                       "its own checkpoint (ckpt_path=<run directory> with train=false), or select its fold with "
                       f"runner.folds=[{meta.get('fold')}].")
    check_same(f"checkpoint {path}", meta.get("fingerprint"), current, fix, only)


def fold_of(meta: dict, folds: list[Fold]) -> Fold | None:
    return next((f for f in folds if list(f.test_subjects) == list(meta.get("test_subjects", []))), None)


def saved_checkpoint(run_dir: Path, fold: Fold) -> Path | None:
    """The checkpoint a finished run tested for this fold (fold.json), else best.ckpt, else last.ckpt."""
    fold_dir = fold_folder(run_dir, fold.index)
    meta = fold_dir / "fold.json"
    recorded = json.loads(meta.read_text()).get("checkpoint") if meta.is_file() else None
    for candidate in (recorded, "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        if candidate and (fold_dir / candidate).is_file():
            return fold_dir / candidate
    return None


def given_checkpoints(cfg: DictConfig, folds: list[Fold], all_folds: list[Fold],
                      current: dict) -> tuple[list[Fold], dict[int, str]]:
    """The folds to run and the checkpoint each starts from (`ckpt_path`), all checked.

    Training (`train=true`): `ckpt_path` is one fold's checkpoint; that fold resumes from it, the
    others train from scratch. Testing only (`train=false`): every selected fold is tested with its
    own checkpoint, from `ckpt_path=<run directory>` (or one `.ckpt`: its fold only).
    """
    given, train = cfg.get("ckpt_path"), bool(cfg.get("train", True))
    if not given:
        if not train:
            raise MERError("train=false tests saved models and trains none: give ckpt_path=<a run directory> "
                           "(each fold tested with its own checkpoint) or ckpt_path=<one fold's .ckpt>")
        return folds, {}
    path = Path(str(given)).expanduser()
    if path.is_dir():
        if train:
            raise MERError(f"ckpt_path={given} is a directory; to resume training give one fold's checkpoint "
                           "(.../folds/fold_03/checkpoints/last.ckpt), or rerun in the same hydra.run.dir to resume all")
        found = {f.index: saved_checkpoint(path, f) for f in folds}
        missing = [f.name for f in folds if found[f.index] is None]
        if missing:
            raise MERError(f"ckpt_path={given}: no checkpoint for {', '.join(missing)} under {path / 'folds'}; "
                           "select the folds that have one with runner.folds=[...]")
        for fold in folds:
            check_fold(found[fold.index], read_meta(found[fold.index]), fold, current, SAME_FOLD)
        return folds, {i: str(p) for i, p in found.items()}
    meta = read_meta(path)
    fold = fold_of(meta, all_folds)
    if fold is None:
        raise MERError(f"ckpt_path={given} tested subjects {meta.get('test_subjects')}, which no fold of this "
                       "protocol holds out (another protocol or dataset?)")
    if fold not in folds:
        raise MERError(f"ckpt_path={given} belongs to {fold.name}, which runner.folds="
                       f"{list((cfg.get('runner') or {}).get('folds') or [])} does not select")
    check_fold(path, meta, fold, current, SAME_FOLD)
    if not train and len(folds) > 1:
        log.info("train=false with one fold's checkpoint: only %s is tested", fold.name)
        folds = [fold]
    return folds, {fold.index: str(path)}
