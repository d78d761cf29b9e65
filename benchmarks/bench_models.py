"""Training throughput of the model presets: clips/s on random clips (no data loading).

    python benchmarks/bench_models.py                                   # CPU, batch 4, 8x112x112 clips
    python benchmarks/bench_models.py --device cuda --precision bf16-mixed --batch 64
    python benchmarks/bench_models.py --models cnn_bilstm timm timm:efficientnet_b0/transformer \
        --channels-last --compile

A model is `preset[:timm_name][/head]`; each is built from conf/ exactly as `python -m
mer_lightning.train model=<preset>` builds it (same optimizer), and timed over full training
steps (forward, loss, backward, optimizer step) after warm-up steps. On CUDA the table also
shows peak memory and the mean GPU utilisation sampled during the timed steps
(torch.cuda.utilization, needs the NVML bindings: `pip install nvidia-ml-py`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from mer_lightning.models.factory import ClipShape, build_model  # noqa: E402
from mer_lightning.resolvers import register_resolvers  # noqa: E402

PRECISIONS = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def model_config(spec: str, args: argparse.Namespace) -> DictConfig:
    preset, _, head = spec.partition("/")
    preset, _, name = preset.partition(":")
    overrides = [f"model={preset}", f"data.num_frames={args.frames}", f"data.image_size={args.size}",
                 f"model.channels_last={str(args.channels_last).lower()}", "data.grayscale=" + str(args.channels == 1).lower()]
    if name:
        overrides.append(f"model.backbone.name={name}")
    if head:
        overrides.append(f"model/head={head}")
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose(config_name="train.yaml", overrides=overrides + list(args.override))


def bench(spec: str, args: argparse.Namespace) -> dict:
    cfg = model_config(spec, args)
    device = torch.device(args.device)
    shape = ClipShape(args.classes, args.frames, int(cfg.data.channels), args.size)
    model = build_model(cfg.model, shape).to(device)
    if args.compile:
        model.backbone.compile()
    model.train()
    configured = model.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    dtype = PRECISIONS[args.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16 and device.type == "cuda")
    x = torch.randn(args.batch, args.frames, cfg.data.channels, args.size, args.size, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    cuda = device.type == "cuda"

    def step() -> None:
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            loss = model.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    utilisation: list[int] = []
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
        if cuda:
            with contextlib.suppress(Exception):  # NVML missing: no utilisation column
                utilisation.append(torch.cuda.utilization(device))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    row = {"model": spec, "backbone": getattr(model.backbone, "name", type(model.backbone).__name__),
           "head": type(model.head).__name__, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
           "clips_per_s": args.batch * args.steps / seconds, "ms_per_step": 1000 * seconds / args.steps}
    if cuda:
        row["peak_mem_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
        row["gpu_util_%"] = sum(utilisation) / len(utilisation) if utilisation else float("nan")
    return row


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["cnn_bilstm", "timm:resnet18"],
                        help="preset[:timm_name][/head], e.g. timm:efficientnet_b0/transformer")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--precision", default="32-true", choices=list(PRECISIONS))
    parser.add_argument("--batch", type=int, default=None, help="clips per step (default: 4 on CPU, 64 otherwise)")
    parser.add_argument("--frames", type=int, default=8, help="T, frames per clip")
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels")
    parser.add_argument("--channels", type=int, default=1, choices=[1, 3], help="1 grayscale, 3 RGB")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 5 on CPU, 30 otherwise)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 2 on CPU, 10 otherwise)")
    parser.add_argument("--channels-last", action="store_true", help="model.channels_last=true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("override", nargs="*", help="extra Hydra overrides for every model (model.head.hidden_size=128)")
    args = parser.parse_args(argv)
    cpu = args.device == "cpu"
    args.batch = args.batch or (4 if cpu else 64)
    args.steps = args.steps or (5 if cpu else 30)
    args.warmup = args.warmup if args.warmup is not None else (2 if cpu else 10)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    register_resolvers()
    torch.manual_seed(0)
    where = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else \
        f"{args.device} ({torch.get_num_threads()} threads)"
    print(f"# training throughput: {args.frames}x{args.channels}x{args.size}x{args.size} clips, batch {args.batch}, "
          f"{args.precision}{', channels_last' if args.channels_last else ''}{', compiled' if args.compile else ''}, "
          f"{where}, torch {torch.__version__}, {args.warmup} warm-up + {args.steps} timed steps\n")
    rows = [bench(spec, args) for spec in args.models]
    print(table(rows))


if __name__ == "__main__":
    main()
