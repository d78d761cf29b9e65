"""The run directory: its checks, its saved config, its lock (one run per directory), and the start-of-run
chores every entry point shares (Lightning's notes once, the one-line summary of what runs)."""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from filelock import ReadWriteLock, Timeout
from omegaconf import DictConfig, OmegaConf

from mer_lightning.utils.errors import MERError
from mer_lightning.utils.rich_utils import print_config_tree

log = logging.getLogger(__name__)
LOCK = ".mer.lock"


def start_run(cfg: DictConfig) -> Path:
    """Check paths and the seed, save `config.yaml` (resolved) in the run directory, print the config tree."""
    out_dir = Path(cfg.paths.output_dir)
    if not os.access(out_dir, os.W_OK):
        raise MERError(f"output directory {out_dir} is not writable; choose another with "
                       "`hydra.run.dir=...` or `paths.log_dir=...`")
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MERError(f"seed={seed}: give a non-negative integer (e.g. seed=42); every result is fixed by it")
    ckpt = cfg.get("ckpt_path")
    if ckpt and not Path(str(ckpt)).expanduser().exists():
        raise MERError(f"ckpt_path={ckpt} does not exist")
    try:
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as err:
        raise MERError(f"cannot write {out_dir / 'config.yaml'} ({err.strerror or err}); free space or choose "
                       "another directory with `hydra.run.dir=...`") from None
    extras = cfg.get("extras") or {}
    say_lightning_notes_once()
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    print_config_tree(cfg, save_to=out_dir / "config_tree.log", show=bool(extras.get("print_config")))
    if not extras.get("print_config"):
        print(run_summary(cfg, out_dir), flush=True)
    return out_dir


class _Once(logging.Filter):
    """Lets each distinct message through once per process (Lightning repeats its notes every fold), and
    none of Lightning's advertisements (its LitLogger tip)."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen or message.startswith("💡 Tip"):
            return False
        self.seen.add(message)
        return True


def say_lightning_notes_once() -> None:
    """Lightning's tips, device lines and warnings once per run, not once per fold (16x in a LOSO run),
    each through one handler only."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Once) for f in logger.filters):
            logger.addFilter(_Once())
    if logging.getLogger().handlers:  # Hydra's console + train.log handlers: Lightning's own would print twice
        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)
            logger.propagate = True
    warnings.filterwarnings("once", module=r"lightning(\.|$)")
    warnings.filterwarnings("once", module=r"pytorch_lightning(\.|$)")
    # deprecations raised inside Lightning by the installed torch, not by anything a user set
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=Warning)
    warnings.filterwarnings("ignore", message=r".*torch.distributed.nn.functional.all_gather is deprecated.*")


def run_summary(cfg: DictConfig, out_dir: Path) -> str:
    """One line instead of the config tree: what runs, and where its results go."""
    data, model = cfg.get("data") or {}, cfg.get("model") or {}
    protocol, runner = cfg.get("protocol") or {}, cfg.get("runner") or {}
    folds = runner.get("folds")
    spotter = cfg.get("spotter")
    if spotter is not None:  # python -m mer_lightning.spot: the spotter, and the recogniser only when it is used
        recogniser = f" recognise=true model={model.get('name', '?')}" if cfg.get("recognise") else ""
        return (f"{cfg.get('task_name', 'run')}: data={data.get('name', '?')} spotter={spotter.get('name', '?')}"
                f"{recogniser} protocol={protocol.get('name', '?')}{f' folds={folds}' if folds is not None else ''} "
                f"seed={cfg.get('seed')} -> {out_dir} (full config: config.yaml)")
    return (f"{cfg.get('task_name', 'run')}: data={data.get('name', '?')} model={model.get('name', '?')} "
            f"protocol={protocol.get('name', '?')}{f' folds={folds}' if folds is not None else ''} "
            f"{f'selection={runner.selection} ' if runner.get('selection') else ''}"
            f"seed={cfg.get('seed')} -> {out_dir} (full config: config.yaml)")


def _extra_rank() -> bool:
    """A DDP / SLURM process other than the first (Lightning's global rank): it shares the first
    one's run directory."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) != 0


@contextmanager
def run_lock(out_dir: Path, shared: bool = False):
    """Hold `<out_dir>/.mer.lock` for the run: a second run in the same directory is refused.

    A reader/writer lock (`filelock`, portable): released when the process ends however it ends; the
    extra ranks of a DDP run share the first rank's directory and do not take it. `shared`: the fold
    jobs of one protocol (`runner.pool=false`, e.g. a job array) may share the directory with each
    other (readers), never with a whole-protocol run (the writer). Who holds it is in `.mer.lock.holder`.
    """
    if _extra_rank():
        yield
        return
    path, holder = Path(out_dir) / LOCK, Path(out_dir) / f"{LOCK}.holder"
    try:
        lock = ReadWriteLock(path, is_singleton=False)
        (lock.acquire_read if shared else lock.acquire_write)(timeout=0, blocking=False)
    except Timeout:
        who = holder.read_text().strip() if holder.is_file() else "another process"
        raise MERError(f"another run is using {out_dir} ({who}); wait for it to finish, or give this run "
                       "its own directory with `hydra.run.dir=...`") from None
    except (OSError, ValueError) as err:
        raise MERError(f"cannot lock {path} ({getattr(err, 'strerror', None) or err}); choose a writable "
                       "`hydra.run.dir=...`") from None
    try:
        if not shared:
            holder.write_text(f"pid {os.getpid()} on {socket.gethostname()}, "
                              f"started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        yield
    finally:
        lock.release()
        lock.close()
