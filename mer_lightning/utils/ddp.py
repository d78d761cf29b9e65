"""DDP that runs each job of a Hydra multirun once, in that job's own directory.

Lightning's script launcher starts ranks 1..N-1 by re-running the command line. Under `-m` that
command line is the whole sweep, so every extra rank would re-run every job into a multirun
directory of its own. This launcher starts the extra ranks as single runs of *this* job: its
own overrides, `hydra.run.dir` set to the job's output directory.
"""

from __future__ import annotations

import os
import subprocess
import sys

from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher


def _multirun_job_command(local_rank: int) -> tuple[list[str], str]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    import __main__

    hydra_cfg = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, os.path.abspath(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(hydra_cfg.overrides.task)
    command += [f"hydra.run.dir={hydra_cfg.runtime.output_dir}", f"hydra.job.name=train_ddp_process_{local_rank}",
                "hydra.output_subdir=null"]
    return command, get_original_cwd()


class _MultirunSafeLauncher(_SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
            return super()._call_children_scripts()
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        for local_rank in range(1, self.num_processes):
            env = dict(os.environ, LOCAL_RANK=str(local_rank))
            command, cwd = _multirun_job_command(local_rank)
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))


class MultirunSafeDDP(DDPStrategy):
    """`strategy=ddp` that is safe inside `-m` sweeps (see the module docstring)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _MultirunSafeLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


LAUNCHER_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def end_job_processes() -> None:
    """After a multirun job: close its process group and forget its launcher's variables.

    Otherwise the next job in the same process believes its ranks already exist (LOCAL_RANK is set)
    and waits forever for peers that finished with the previous job.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for name in LAUNCHER_VARIABLES:
        os.environ.pop(name, None)
