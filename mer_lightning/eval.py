"""Test a saved checkpoint on the subjects its fold held out: `python -m mer_lightning.eval ckpt_path=...`.

The checkpoint carries its fold (test subjects), class names and the data/model configs it was
trained with; those are used, with any `data.*` / `model.*` overrides from the command line on
top (e.g. `data.root=` when the dataset moved). Writes the same report files as `train`.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from mer_lightning.data.splits import OFFICIAL_TEST, SUBJECT_PROTOCOLS, Fold
from mer_lightning.evaluation.report import print_results, write_report
from mer_lightning.evaluation.results import fold_frame, fold_record, pooled_results
from mer_lightning.models.factory import build_model
from mer_lightning.resolvers import register_resolvers
from mer_lightning.runner.checkpoints import load_weights, read_meta
from mer_lightning.runner.folds import check_predictions, debug_limits, drop_moved_keys
from mer_lightning.utils.errors import MERError, exit_on_user_error
from mer_lightning.utils.instantiate import instantiate_strict
from mer_lightning.utils.run_dir import start_run

register_resolvers()


def apply_stored_configs(cfg: DictConfig, meta: dict) -> None:
    """Use the checkpoint's data/model configs, then the command line's data.*/model.* overrides."""
    overrides = [o for o in HydraConfig.get().overrides.task if o.split("=")[0].lstrip("+~").startswith(("data.", "model."))]
    with open_dict(cfg):
        cfg.data = OmegaConf.create(meta["data"])
        cfg.model = OmegaConf.create(meta["model"])
        for override in overrides:
            key, value = override.lstrip("+").split("=", 1)
            OmegaConf.update(cfg, key, _parse(value), force_add=True)


def _parse(value: str):
    """A command-line value as YAML would read it (numbers, booleans, lists)."""
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def evaluate(cfg: DictConfig) -> dict:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise MERError("eval tests one saved checkpoint: give ckpt_path=<run dir>/folds/fold_00/checkpoints/best.ckpt "
                       "(to re-test every fold of a run: python -m mer_lightning.train train=false ckpt_path=<run dir>)")
    drop_moved_keys(cfg)
    out_dir = start_run(cfg)
    meta = read_meta(cfg.ckpt_path)
    apply_stored_configs(cfg, meta)
    dm = instantiate_strict(cfg.data, "data")
    table = dm.load()
    if dm.class_names != meta["classes"]:
        raise MERError(f"the checkpoint was trained on classes {meta['classes']}, the data gives {dm.class_names}")
    subjects = meta["test_subjects"]
    official = subjects == [OFFICIAL_TEST]
    test = [i for i, s in enumerate(table) if s.split == "test"] if official else table.where_subjects(subjects)
    if not test:
        raise MERError(f"none of the checkpoint's test subjects {subjects} are in {dm.root}")
    fold = Fold(meta["fold"], [], [], test, subjects)
    dm.set_fold(fold)
    model = load_weights(build_model(cfg.model, dm), cfg.ckpt_path)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])
    trainer.test(model, datamodule=dm, verbose=False)
    frame = fold_frame(dm, fold, model.test_predictions)
    limits = debug_limits(cfg)
    unpredicted = check_predictions(dm, fold, frame, bool(limits))
    partial = [*limits, *([f"{unpredicted} test clip(s) not predicted"] if unpredicted else [])]
    protocol = meta.get("protocol") or {}
    if protocol.get("name") in SUBJECT_PROTOCOLS:
        partial.append(f"one fold's checkpoint (fold {fold.index}) of a {protocol['name']} protocol")
    fold_result = fold_record(fold, frame, None, f"checkpoint {Path(cfg.ckpt_path).name}", str(cfg.ckpt_path),
                              dm.num_classes)
    results = pooled_results(cfg, dm.class_names, [frame], [fold_result], protocol=meta.get("protocol"),
                             partial=partial, skipped=[s.as_dict() for s in dm.table.skipped])
    if trainer.is_global_zero:
        write_report(out_dir, results, frame, dm.class_names)
        print_results(results)
    return results


@hydra.main(version_base="1.3", config_path="conf", config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(evaluate)(cfg)


if __name__ == "__main__":
    main()
