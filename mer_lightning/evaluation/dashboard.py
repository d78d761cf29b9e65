"""What the loggers see, arranged as a researcher would arrange a W&B dashboard by hand.

- **Groups**: one per protocol run, shared by its fold runs (job type `fold`; `select` for a refit's
  selection pass) and its summary run (`summary`): `<experiment>/<run directory>`, or in a multirun
  `<experiment>/<sweep directory>/<job>` (one group per job; a job array's fold jobs, which write one
  run directory, share its group).
- **Names** say what the run is: `<label>/fold_00`, the label being the job's number and its own
  overrides in short form (`#3 model=cnn lr=0.01`) in a multirun, else `<data>/<model>`; two jobs
  never share names.
- **Tags**: the choices that define the experiment (`data=`, `model=`, `model/backbone=`,
  `model/head=`, `protocol=`, `experiment=`), the user's `tags`, and in a multirun `sweep=<sweep>`,
  so one sweep is one filter; each tag at most 64 characters (longer ones shortened with a hash,
  never an error). Paths, loggers and trainer plumbing are never tags.
- **Config**: flat and readable (`data`, `model`, `backbone`, `head`, `input`, `image_size`, `protocol`,
  `selection`, `seed`, ...), plus `fold`, `test_subjects` and `stage` on fold runs. The full resolved
  config stays in the run directory (`config.yaml`).
- **Curves** against `epoch` (`define_metric`), `val/uf1` summarised as its maximum; the selected
  checkpoint's re-validation has keys of its own (`selected/val_*`).
- **The summary run holds the answer**: pooled `protocol/*` (test and validation), the reference's
  `reference/*` and `vs_reference/*` in `run.summary`; the per-fold table, the confusion matrix as an
  interactive plot (and its PNG), `curves.png` and the predictions as tables. `python -m mer_lightning.pool`
  sends the same.
- **Checkpoints** (`logger.wandb.log_model=true`, online): each fold's tested checkpoint as a `model`
  artifact with its fold in the metadata; offline runs cannot upload them (one line says so).

`logger.wandb.group`, `name`, `job_type` and `tags` set by the user win over these defaults (a user's
name becomes the prefix of every run's name).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mer_lightning.evaluation.results import results_frame
from mer_lightning.utils.instantiate import instantiate_loggers

log = logging.getLogger(__name__)
MAX_TAG = 64
TAG_GROUPS = ("data", "model", "model/backbone", "model/head", "protocol", "experiment")
# overrides that say where or how a run ran, not what it is: never in names or tags
PLUMBING = ("hydra", "paths", "logger", "extras", "trainer", "callbacks", "debug", "hparams_search",
            "data.root", "data.cache_dir", "data.num_workers", "data.pin_memory", "runner.folds", "runner.resume",
            "runner.parallel", "runner.folds_per_gpu", "runner.threads_per_fold", "runner.pool", "runner.pack",
            "runner.pack_execution", "ckpt_path",
            "train", "report")


def shorten(tag: str, limit: int = MAX_TAG) -> str:
    """`tag` if it fits in `limit` characters, else its start and a hash of the whole (W&B refuses > 64)."""
    tag = str(tag).strip() or "-"
    if len(tag) <= limit:
        return tag
    digest = hashlib.sha1(tag.encode()).hexdigest()[:8]
    return f"{tag[: limit - 9]}~{digest}"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def experiment_overrides(overrides: list[str]) -> list[str]:
    """The overrides that say what a run is (not where it ran or how it was logged)."""
    return [o for o in overrides if "=" in o and not _key(o).startswith(PLUMBING) and not _key(o).endswith("_root")]


def short_form(overrides: list[str], limit: int = 96) -> str:
    """`model/head=gru model.optimizer.lr=0.01` -> `head=gru lr=0.01` (each key's last part; config group
    choices first, so that what is cut off at `limit` is the least telling)."""
    parts = []
    chosen = sorted(experiment_overrides(overrides), key=lambda o: "." in _key(o))
    for override in chosen:
        key, value = override.split("=", 1)
        name = key.lstrip("+~").replace("/", ".").split(".")[-1]
        parts.append(f"{name}={value if len(value) <= 24 else value[:21] + '...'}")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Identity:
    """Where a run's logger runs go: its group, the label its run names start with, its tags."""

    group: str
    label: str
    tags: list[str] = field(default_factory=list)
    sweep: str | None = None


def identity(cfg: DictConfig, hydra: DictConfig | None = None) -> Identity:
    """This run's group, label and tags (from Hydra's runtime record: the job's overrides and choices)."""
    if hydra is None:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get() if HydraConfig.initialized() else None
    out = Path(str(cfg.paths.output_dir))
    experiment = cfg.get("experiment_name") or cfg.get("task_name") or "run"
    overrides = list(hydra.overrides.task) if hydra is not None else []
    shown = short_form(overrides)
    one_job_per_fold = not (cfg.get("runner") or {}).get("pool", True)  # a job array: one run directory
    sweep = None
    if hydra is not None and "MULTIRUN" in str(hydra.mode) and not one_job_per_fold:
        sweep, job = Path(str(hydra.sweep.dir)).name, int(hydra.job.num)
        group, label = f"{experiment}/{sweep}/{job}", f"#{job} {shown}".strip()
    else:
        group = f"{experiment}/{out.name}"
        label = f"{OmegaConf.select(cfg, 'data.name')}/{OmegaConf.select(cfg, 'model.name')}"
    choices = dict(hydra.runtime.choices) if hydra is not None else {}
    tags = [f"{g}={choices[g]}" for g in TAG_GROUPS if choices.get(g) not in (None, "null")]
    timm_name = OmegaConf.select(cfg, "model.backbone.name")
    if timm_name and "timm" in str(OmegaConf.select(cfg, "model.backbone._target_", default="")).lower():
        tags.append(f"timm={timm_name}")
    tags += [str(t) for t in (cfg.get("tags") or [])]
    if sweep:
        tags.append(f"sweep={sweep}")
    return Identity(shorten(group, 128), label, list(dict.fromkeys(shorten(t) for t in tags)), sweep)


def wandb_settings(cfg: DictConfig, version: str, job_type: str, ident: Identity | None = None) -> dict:
    """`name`, `group`, `job_type` and `tags` of one W&B run (the user's `logger.wandb.*` win)."""
    ident = ident or identity(cfg)
    user = OmegaConf.select(cfg, "logger.wandb") or {}
    name = f"{user.get('name') or ident.label}/{version}"
    tags = [shorten(t) for t in dict.fromkeys([*(user.get("tags") or []), *ident.tags])]
    return {"name": name, "group": user.get("group") or ident.group, "job_type": user.get("job_type") or job_type,
            "tags": tags}


def _short_target(node) -> str | None:
    target = OmegaConf.select(node, "_target_") if isinstance(node, DictConfig) else None
    return str(target).rsplit(".", 1)[-1] if target else None


def run_config(cfg: DictConfig, fold=None, stage: str | None = None, ident: Identity | None = None) -> dict:
    """The flat, readable config a dashboard filters on (the full one is config.yaml in the run directory)."""
    get = lambda key: OmegaConf.select(cfg, key, default=None)  # noqa: E731
    classes = get("data.classes")
    flat = {
        "data": get("data.name"), "classes": classes if isinstance(classes, str) else ",".join(map(str, classes or [])),
        "input": get("data.input"), "image_size": get("data.image_size"), "num_frames": get("data.num_frames"),
        "face": get("data.face"), "flow": get("data.flow"), "flow_size": get("data.flow_size"),
        "flow_scaling": get("data.flow_scaling"), "batch_size": get("data.batch_size"),
        "model": get("model.name"), "backbone": get("model.backbone.name") or _short_target(get("model.backbone")),
        "head": _short_target(get("model.head")), "lr": get("model.optimizer.lr"),
        "weight_decay": get("model.optimizer.weight_decay"), "max_epochs": get("trainer.max_epochs"),
        "protocol": get("protocol.name"), "val_subjects": get("protocol.val_subjects"),
        "selection": get("runner.selection"), "inner_folds": get("runner.inner_folds"), "seed": get("seed"),
        "experiment": get("experiment_name"), "run_dir": get("paths.output_dir"),
    }
    if ident is not None:
        flat.update(overrides=ident.label, sweep=ident.sweep)
    if fold is not None:
        flat.update(fold=fold.index, test_subjects=",".join(fold.test_subjects), stage=stage)
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in flat.items()}


def is_wandb(logger) -> bool:
    return type(logger).__name__ == "WandbLogger"


def fold_loggers(cfg: DictConfig, version: str, fold, stage: str) -> list:
    """The loggers of one fit: named and grouped for the dashboard, their config flat, curves against epochs."""
    ident = identity(cfg)
    job_type = "select" if stage == "select" else "fold"
    loggers = instantiate_loggers(cfg.get("logger"), version=version,
                                  wandb=wandb_settings(cfg, version, job_type, ident))
    for lg in loggers:
        lg.log_hyperparams(run_config(cfg, fold, stage, ident))
        if is_wandb(lg):
            define_epoch_axis(lg.experiment)
    return loggers


def define_epoch_axis(run) -> None:
    """Training and validation curves against `epoch`; `val/uf1` summarised as its best (max)."""
    run.define_metric("epoch")
    for pattern in ("train/*", "val/*"):
        run.define_metric(pattern, step_metric="epoch")
    run.define_metric("val/uf1", step_metric="epoch", summary="max")
    run.define_metric("val/loss", step_metric="epoch", summary="min")


_SAID: set[str] = set()


def log_checkpoint(cfg: DictConfig, loggers: list, path: Path | None, fold, details: dict) -> None:
    """`logger.wandb.log_model=true`: the fold's tested checkpoint as a W&B `model` artifact (online only)."""
    if not path or not OmegaConf.select(cfg, "logger.wandb.log_model", default=False):
        return
    for lg in loggers:
        if not is_wandb(lg):
            continue
        run = lg.experiment
        if getattr(run.settings, "_offline", False) or str(getattr(run.settings, "mode", "")) in ("offline", "dryrun"):
            if "log_model" not in _SAID:
                _SAID.add("log_model")
                log.warning("W&B: logger.wandb.log_model=true uploads checkpoints, which an offline run cannot; none "
                            "was uploaded (each fold's checkpoint stays in its folds/fold_XX/checkpoints/)")
            return
        import wandb

        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata={
            "fold": fold.index, "test_subjects": list(fold.test_subjects), "selection": details.get("mode"),
            "epochs": details.get("epochs")})
        artifact.add_file(str(path))
        run.log_artifact(artifact, aliases=["selected", f"fold_{fold.index:02d}"])


def finish_wandb(loggers) -> None:
    """One W&B run per fit: close it before the next starts (one log line each)."""
    for lg in loggers:
        if is_wandb(lg):
            import wandb

            run = wandb.run
            if run is not None:
                offline = bool(getattr(run.settings, "_offline", False)) or run.settings.mode == "offline"
                where = f"offline in {run.dir} (upload later: wandb sync)" if offline else run.url
                log.info("W&B run %s: %s", run.name, where)
            wandb.finish()


def log_summary(cfg: DictConfig, results: dict, out_dir: Path, hydra: DictConfig | None = None) -> None:
    """The protocol's answer, as one summary run per logger: pooled figures (W&B: in `run.summary`), the
    per-fold table, the confusion matrix, the curves and the predictions."""
    ident = identity(cfg, hydra)
    loggers = instantiate_loggers(cfg.get("logger"), version="summary",
                                  wandb=wandb_settings(cfg, "summary", "summary", ident))
    if not loggers:
        return
    metrics = {k: v for k, v in results["metrics"].items() if v is not None}
    settings = {**run_config(cfg, ident=ident), "folds": len(results["folds"]),
                "complete": bool(results.get("complete", True))}
    for lg in loggers:
        lg.log_hyperparams(settings)
        if is_wandb(lg):
            summary_to_wandb(lg.experiment, results, metrics, out_dir)
        else:
            per_fold = {f"fold/{f['index']}/{k}": f["metrics"][k] for f in results["folds"] for k in ("acc", "uf1", "uar")}
            lg.log_metrics({**metrics, **per_fold}, step=0)
        lg.finalize("success")
    finish_wandb(loggers)


def summary_to_wandb(run, results: dict, metrics: dict, out_dir: Path) -> None:
    import wandb

    run.summary.update({**metrics, "selection": (results.get("selection") or {}).get("mode"),
                        "complete": bool(results.get("complete", True))})
    rows = []
    for fold in results["folds"]:
        fm, details = fold["metrics"], fold.get("details") or {}
        rows.append([fold["index"], ", ".join(fold["test_subjects"]), fm["n"], fm["uf1"], fm["uar"], fm["acc"],
                     details.get("epochs"), details.get("mode")])
    media = {"folds": wandb.Table(columns=["fold", "test_subjects", "n", "uf1", "uar", "acc", "epochs", "selection"],
                                  data=rows),
             "results": wandb.Table(dataframe=results_frame(results))}
    predictions = out_dir / "predictions.csv"
    if predictions.is_file():
        frame = pd.read_csv(predictions)
        media["predictions"] = wandb.Table(dataframe=frame)
        media["confusion_matrix"] = wandb.plot.confusion_matrix(
            y_true=frame.y_true.tolist(), preds=frame.y_pred.tolist(), class_names=list(results["classes"]),
            title="pooled over folds")
    for name in ("confusion_matrix", "curves"):
        if (out_dir / f"{name}.png").is_file():
            media[f"{name}_png"] = wandb.Image(str(out_dir / f"{name}.png"))
    run.log(media)


def log_spot_summary(cfg: DictConfig, results: dict, out_dir: Path, folds: pd.DataFrame) -> None:
    """A spotting run's answer as one summary run per logger: the pooled `spot/*` (and `str/*`) figures (W&B:
    in `run.summary`), the per-fold table `folds`, the intervals and one picture per video (the first 20)."""
    ident = identity(cfg)
    loggers = instantiate_loggers(cfg.get("logger"), version="summary",
                                  wandb=wandb_settings(cfg, "summary", "summary", ident))
    if not loggers:
        return
    metrics = {k: v for k, v in results["metrics"].items() if isinstance(v, (int, float))}
    settings = {**run_config(cfg, ident=ident), "spotter": OmegaConf.select(cfg, "spotter.name"),
                "recognise": bool(cfg.get("recognise", False)), "folds": len(results["folds"]),
                "complete": bool(results.get("complete", True))}
    for lg in loggers:
        lg.log_hyperparams(settings)
        if is_wandb(lg):
            import wandb

            run = lg.experiment
            run.summary.update({**metrics, "complete": settings["complete"]})
            media = {"folds": wandb.Table(dataframe=folds)}
            if (out_dir / "intervals.csv").is_file():
                media["intervals"] = wandb.Table(dataframe=pd.read_csv(out_dir / "intervals.csv", keep_default_na=False))
            for picture in sorted((out_dir / "videos").glob("*.png"))[:20]:
                media[f"video/{picture.stem}"] = wandb.Image(str(picture))
            run.log(media)
        else:
            per_fold = {f"fold/{f['index']}/{k}": f[k] for f in results["folds"] for k in ("f1", "f1_micro", "f1_macro")}
            lg.log_metrics({**metrics, **per_fold}, step=0)
        lg.finalize("success")
    finish_wandb(loggers)
