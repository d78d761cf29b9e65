"""OmegaConf resolvers: the only place configs read the environment.

- `${project_root:}`      the repository root of a checkout (else the working directory): data/, outputs/.
- `${wandb_offline:}`     true when W&B has no API key and no WANDB_MODE: log offline, never block.
- `${input_channels:${data.input},${data.grayscale}}`  the channels a model gets for a data input:
                          frames / diff / diff_seq 1 (grayscale) or 3 (RGB), flow / flow_seq 3
                          (u, v, optical strain); `data.channels` in conf/_data.yaml, read by
                          the model's `in_chans` (the same function the DataModule's clips follow).
                          data=precomputed passes a third argument, `${data.reader.channels}`: the
                          channels of its stored inputs (`data.input=stored`).
- `${gpu_for_job:}`       the GPU of this job in a multirun (job number modulo visible GPUs).
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from omegaconf import OmegaConf


def _project_root() -> Path:
    """The repository root for a checkout (editable install); the working directory for an installed package."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


PROJECT_ROOT = _project_root()


def wandb_has_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_offline() -> bool:
    """Offline unless the user asked for a mode or can authenticate."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"] in ("offline", "dryrun")
    return not wandb_has_credentials()


def gpu_for_job() -> list[int] | int:
    """The GPU a job should use: in a multirun, job number modulo the visible GPUs.

    Parallel jobs (joblib launcher) then spread over the GPUs instead of all taking GPU 0;
    CUDA_VISIBLE_DEVICES narrows the set as usual. Without CUDA: 1 (Lightning's "one device").
    """
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    count = torch.cuda.device_count()
    if count == 0:
        return 1
    job = 0
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        job = int(HydraConfig.get().job.num)
    return [job % count]


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("gpu_for_job"):
        OmegaConf.register_new_resolver("gpu_for_job", gpu_for_job)
    if not OmegaConf.has_resolver("input_channels"):
        OmegaConf.register_new_resolver("input_channels", input_channels)


def input_channels(input: str = "frames", grayscale: bool = True, stored: int | None = None) -> int:
    """Channels of `data.input` (imported lazily: resolving a config must not load OpenCV); `stored`: the
    channels a data config states for stored inputs (data=precomputed: `${data.reader.channels}`)."""
    from mer_lightning.data.preprocessing import input_channels as channels

    return channels(input, grayscale, stored)
