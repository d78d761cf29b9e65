"""The classical reference beside every result (`report.reference=linear`, on by default).

A deep model below a logistic regression on optical flow is a bug to find, not a result, so every
recognition run also trains `model=linear` (`models/linear.py`: multinomial logistic regression on
the onset -> apex flow pooled to a grid, standardised per fold, fitted to convergence) on the same
folds: the same samples, trained on every training subject of each fold (a converged logistic
regression has no epoch to choose), tested on the fold's test subjects. Its pooled figures go into
results.json (`reference/*`, and `vs_reference/*` = model - reference), results.md, the printed
table, W&B and sweep.md; its predictions into `reference_predictions.csv`.

The reference sees the run's data with the input of `model=linear` (onset -> apex flow, one step,
no augmentation; stored inputs of `data=precomputed` as they are): when the run's own input is that
already its arrays are reused, otherwise a
second cache entry is built once (face crops and flow at `data.flow_size`) and reused by every later
run. The fits themselves need no Lightning loop (milliseconds per fold); the cost is that cache
entry, paid once per dataset and preprocessing (`make bench` measures it).
"""

from __future__ import annotations

import copy
import logging
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from mer_lightning.data.splits import Fold
from mer_lightning.evaluation.metrics import summarize
from mer_lightning.evaluation.results import fold_frame
from mer_lightning.models.factory import build_model
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.io import write_csv

log = logging.getLogger(__name__)
REFERENCES = ("linear",)
# what model=linear sees: the onset -> apex flow (`data.input=flow_seq` with one step), never augmented
REFERENCE_DATA = {"input": "flow_seq", "channels": 3, "num_frames": 1, "frames": "uniform", "augment": None}
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@lru_cache(maxsize=1)
def linear_model_config() -> dict:
    """`model=linear` as the shipped preset composes it (unresolved: its `${data.*}` follow the data)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a @hydra.main job
        cfg = compose(config_name="train.yaml", overrides=["model=linear"])
    else:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = compose(config_name="train.yaml", overrides=["model=linear"])
    return OmegaConf.to_container(cfg.model, resolve=False)


def reference_name(cfg: DictConfig) -> str | None:
    name = (cfg.get("report") or {}).get("reference")
    if name in (None, "", "none", "null", False):
        return None
    if name not in REFERENCES:
        raise MERError(f"report.reference={name}: choose one of {list(REFERENCES)} (or null: no reference)")
    return str(name)


def reference_config(cfg: DictConfig) -> DictConfig:
    """This run's config with model=linear and the reference's input (`REFERENCE_DATA`). Stored inputs
    (`data.input=stored`: someone's precomputed flow images or arrays) are the reference's input as they
    are: there are no frames to measure motion on, and they are what the model learns from."""
    ref = copy.deepcopy(cfg)
    with open_dict(ref):
        if cfg.data.get("input") == "stored":
            ref.data.augment = None
        else:
            ref.data.update(REFERENCE_DATA)
        ref.model = OmegaConf.create(linear_model_config())
    return ref


def reference_features(dm, model, indices: list[int]) -> torch.Tensor:
    """The model's (unstandardised) features of samples `indices`, from the DataModule's arrays."""
    from mer_lightning.data.datamodule import ClipDataset

    data = ClipDataset(dm.clips, dm.table.labels, indices, dm.mean, dm.std)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(indices), 256):
            batch = data.__getitems__(list(range(start, min(start + 256, len(indices)))))
            chunks.append(model.features(batch["x"]).to(torch.float64))
    return torch.cat(chunks) if chunks else torch.zeros(0)


def run_reference(cfg: DictConfig, dm, folds: list[Fold], out_dir: Path) -> dict | None:
    """Fit the reference on every fold of this run; its pooled and per-fold figures (None: no reference)."""
    name = reference_name(cfg)
    if name is None:
        return None
    if (cfg.model.get("name") or "") == name:
        log.info("report.reference=%s: this run is the reference", name)
        return None
    started = time.time()
    ref_cfg = reference_config(cfg)
    ref_dm = instantiate_strict(ref_cfg.data, "data")
    if ref_dm.preprocessing.options() == dm.preprocessing.options():
        ref_dm.table, ref_dm.clips = dm.table, dm.clips  # this run's input is the reference's: reuse its arrays
    else:
        log.info("Reference (%s): preparing its input (onset -> apex flow) ...", name)
        ref_dm.load()
    model = build_model(ref_cfg.model, ref_dm)
    model.eval()
    where = {s.id: i for i, s in enumerate(ref_dm.table)}
    features = reference_features(ref_dm, model, list(range(len(ref_dm.table))))
    labels = torch.as_tensor(ref_dm.table.labels, dtype=torch.long)
    frames, per_fold, missing = [], [], 0
    for fold in folds:
        train = [where[dm.table[i].id] for i in fold.train + fold.val if dm.table[i].id in where]
        test = [where[dm.table[i].id] for i in fold.test if dm.table[i].id in where]
        missing += len(fold.test) - len(test)
        if not train or not test:
            continue
        model.fit_features(features[train], labels[train])
        probs = model.predict_features(features[test]).float()
        frame = fold_frame(ref_dm, Fold(fold.index, train, [], test, fold.test_subjects),
                           {"index": torch.tensor(test), "y": labels[test], "probs": probs})
        frames.append(frame)
        figures = summarize(frame.y_true, frame.y_pred, dm.num_classes)
        per_fold.append({"index": fold.index, "n": figures["n"], **{k: figures[k] for k in ("uf1", "uar", "acc")}})
    if not frames:
        log.warning("Reference (%s): no fold had both training and test samples; not reported", name)
        return None
    predictions = pd.concat(frames, ignore_index=True)
    write_csv(out_dir / "reference_predictions.csv", predictions)
    pooled = summarize(predictions.y_true, predictions.y_pred, dm.num_classes)
    elapsed = time.time() - started
    log.info("Reference (%s, every training subject): pooled UF1 %.4f, UAR %.4f (%.1f s)", name, pooled["uf1"],
             pooled["uar"], elapsed)
    return {"name": name, "metrics": {k: pooled[k] for k in ("uf1", "uar", "acc")}, "n": pooled["n"],
            "missing": missing, "folds": per_fold, "elapsed_s": elapsed,
            "trained_on": "every training subject of each fold (converged; no epoch to choose)",
            "input": OmegaConf.to_container(ref_cfg.data, resolve=True).get("input"),
            "features": int(features.shape[1]) if features.ndim == 2 else 0,
            "mean_fold_uf1": float(np.mean([f["uf1"] for f in per_fold]))}
