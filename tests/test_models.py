"""Models: every backbone x head pair through the real entry point, start-up checks, offline
pretrained weights, and the training options (loss, optimizer/scheduler groups, precision,
channels_last, compile, freezing)."""

from __future__ import annotations

import json
import shutil
import time
from types import SimpleNamespace

import hydra
import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from mer_lightning.models.backbones import STSTNet, TimmBackbone
from mer_lightning.models.factory import ClipShape, build_model
from mer_lightning.models.heads import BiLSTMHead, GRUHead, MeanHead, TransformerHead
from mer_lightning.models.module import MERModule, focal_loss
from mer_lightning.models.weights import load_weights_file
from mer_lightning.runner.run import build_folds
from mer_lightning.train import train
from mer_lightning.utils.errors import MERError, user_error
from tests.conftest import TINY, compose_cfg, run_cli

# the sweep: `model=timm model.backbone.name=resnet18,efficientnet_b0,mobilenetv3_small_100
# model/head=mean,bilstm,transformer`, plus the small CNN, the flow network and the GRU head
BACKBONES = {
    "small_cnn": ["model/backbone=small_cnn"],
    "ststnet": ["model/backbone=ststnet"],
    **{name: ["model/backbone=timm", f"model.backbone.name={name}"]
       for name in ("resnet18", "efficientnet_b0", "mobilenetv3_small_100")},
}
HEADS = {"mean": "MeanHead", "bilstm": "BiLSTMHead", "gru": "GRUHead", "transformer": "TransformerHead"}
# frames (1 channel, grayscale): the shape checks below are written for it
SMALL = ["data.num_frames=2", "data.batch_size=2", "data.input=frames"]
PAIRS = [(b, h) for b in BACKBONES for h in HEADS]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread. Two threads on 2 shared cores spin against each other
    (this file took ~4x longer with torch's default thread count on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(cfg, num_classes: int = 3) -> MERModule:
    return build_model(cfg.model, ClipShape.of(cfg.data, num_classes))


def fold_setup(cfg):
    """The datamodule on its first fold and a fresh model, as protocol.train_fold makes them."""
    dm = hydra.utils.instantiate(cfg.data)
    dm.set_fold(build_folds(cfg, dm.load())[0])
    return dm, build_model(cfg.model, dm)


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)


# -- every pair through the real entry point --------------------------------------------------------

@pytest.mark.parametrize("backbone,head", PAIRS, ids=[f"{b}-{h}" for b, h in PAIRS])
def test_every_backbone_head_pair_fast_dev_run(train_cfg, tmp_path, backbone, head):
    cfg = train_cfg("model=cnn_bilstm", *BACKBONES[backbone], f"model/head={head}", *SMALL, "debug=fast_dev_run")
    results = train(cfg)
    assert 0.0 <= results["metrics"]["protocol/uf1"] <= 1.0
    saved = (tmp_path / "run/config.yaml").read_text()
    assert f"mer_lightning.models.heads.{HEADS[head]}" in saved


@pytest.mark.parametrize("head", [MeanHead, BiLSTMHead, GRUHead, TransformerHead])
@pytest.mark.parametrize("frames", [1, 5])
def test_heads_take_any_number_of_frames(head, frames):
    module = head(in_features=12)
    out = module(torch.randn(3, frames, 12))
    assert out.shape == (3, module.num_features) and module.min_frames == 1


def test_head_sizes_are_configurable():
    assert GRUHead(8, hidden_size=16, num_layers=2, dropout=0.1).num_features == 32
    assert BiLSTMHead(8, hidden_size=5).num_features == 10
    head = TransformerHead(8, d_model=32, num_heads=2, num_layers=1, dim_feedforward=64, pool="mean")
    assert head(torch.randn(2, 3, 8)).shape == (2, 32) and head.cls is None
    with pytest.raises(ValueError, match="multiple of"):
        TransformerHead(8, d_model=30, num_heads=4)


def test_transformer_uses_frame_order():
    torch.manual_seed(0)
    head = TransformerHead(4, d_model=16, num_heads=2, num_layers=1, dropout=0.0).eval()
    x = torch.randn(1, 3, 4)
    assert not torch.allclose(head(x), head(x.flip(1)))


def test_ststnet_matches_the_reference_geometry():
    net = STSTNet(in_chans=3, image_size=28)
    assert net.num_features == 400  # 16 channels x 5 x 5, as in Liong et al. (28x28 flow inputs)
    assert net(torch.randn(2, 3, 28, 28)).shape == (2, 400)
    assert STSTNet(in_chans=1, image_size=64, pool=2, num_features=32)(torch.randn(2, 1, 64, 64)).shape == (2, 32)


def test_timm_backbone_features_before_classifier():
    net = TimmBackbone("mobilenetv3_small_100", in_chans=1, image_size=32)
    assert net.num_features == 1024 and net.min_image_size == 32  # timm's head_hidden_size, total stride
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 1024)


# -- presets and config groups ------------------------------------------------------------------------

@pytest.mark.parametrize("preset,backbone,head,frames", [("cnn", "SmallCNN", "MeanHead", 1),
                                                         ("cnn_bilstm", "SmallCNN", "BiLSTMHead", 8),
                                                         ("timm", "TimmBackbone", "BiLSTMHead", 8)])
def test_presets_are_backbone_and_head_groups(tmp_path, preset, backbone, head, frames):
    cfg = compose_cfg("train.yaml", tmp_path, [f"model={preset}"])
    assert cfg.model.backbone._target_.endswith(backbone) and cfg.model.head._target_.endswith(head)
    assert cfg.data.num_frames == frames
    # the values the inline optimizer/scheduler of cnn and cnn_bilstm had before the groups existed
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW" and cfg.model.optimizer.lr == 0.001
    assert cfg.model.optimizer.weight_decay == 0.0001
    assert cfg.model.scheduler._target_.endswith("CosineAnnealingLR") and cfg.model.scheduler.T_max == cfg.trainer.max_epochs
    assert cfg.model.loss == "cross_entropy" and not cfg.model.compile and not cfg.model.channels_last
    assert cfg.model.backbone.freeze is False and cfg.model.backbone.freeze_epochs == 0


def test_timm_preset_defaults(tmp_path):
    cfg = compose_cfg("train.yaml", tmp_path, ["model=timm"])
    assert cfg.model.backbone.name == "resnet18" and cfg.model.name == "timm_resnet18"
    assert cfg.model.backbone.pretrained is False and cfg.model.backbone.checkpoint is None
    assert cfg.model.backbone.in_chans == cfg.data.channels


@pytest.mark.parametrize("optimizer,kind", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                            ("sgd", torch.optim.SGD)])
@pytest.mark.parametrize("scheduler,sched_kind", [("cosine", torch.optim.lr_scheduler.CosineAnnealingLR),
                                                  ("step", torch.optim.lr_scheduler.StepLR), ("none", None)])
def test_optimizer_and_scheduler_groups(train_cfg, optimizer, kind, scheduler, sched_kind):
    model = build(train_cfg(f"model/optimizer={optimizer}", f"model/scheduler={scheduler}"))
    configured = model.configure_optimizers()
    opt = configured["optimizer"] if isinstance(configured, dict) else configured
    assert type(opt) is kind
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    if sched_kind is None:
        assert not isinstance(configured, dict)
    else:
        assert type(configured["lr_scheduler"]["scheduler"]) is sched_kind


# -- start-up checks ---------------------------------------------------------------------------------

def test_unknown_timm_name_suggests_close_matches(train_cfg):
    with pytest.raises(Exception) as info:
        train(train_cfg("model=timm", "model.backbone.name=resnet1800", *SMALL, "debug=fast_dev_run"))
    err = user_error(info.value)
    assert err is not None, info.value
    assert "resnet1800" in str(err) and "resnet18," in str(err) and "timm.list_models" in str(err)
    with pytest.raises(MERError, match="efficientnet_b0"):
        TimmBackbone("efficientnetb0")


def test_too_few_frames_for_the_head(train_cfg):
    with pytest.raises(MERError, match=r"at least 4 frames.*T=2"):
        train(train_cfg("model.head.min_frames=4", *SMALL, "debug=fast_dev_run"))


def test_too_few_frames_is_one_line_on_the_command_line(tmp_path, tiny_root):
    proc = run_cli("mer_lightning.train", *TINY, f"data.root={tiny_root}", "model.head.min_frames=4",
                   "data.num_frames=2", "debug=fast_dev_run", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "error: backbone SmallCNN" in proc.stderr and "at least 4 frames" in proc.stderr


def test_backbone_and_head_that_do_not_fit(train_cfg):
    # a flattening SmallCNN built for 64 px frames fed 32 px frames: its dense layer does not fit
    with pytest.raises(MERError, match=r"SmallCNN.*cannot run on clips of T=2 x 1x32x32"):
        train(train_cfg("model.backbone.pool=0", "model.backbone.image_size=64", *SMALL, "debug=fast_dev_run"))


def test_stated_width_that_is_wrong(train_cfg):
    model = build(train_cfg(*SMALL))
    model.backbone.num_features = 99
    with pytest.raises(MERError, match="states num_features=99"):
        model.check_input(2, 1, 32)


def test_channels_that_do_not_fit(train_cfg):
    with pytest.raises(MERError, match=r"takes 3 input channels.*gives 1"):
        train(train_cfg("model.backbone.in_chans=3", *SMALL, "debug=fast_dev_run"))


def test_image_too_small_for_the_backbone(train_cfg):
    with pytest.raises(MERError, match=r"data.image_size=8 is too small.*16x16"):
        train(train_cfg("data.image_size=8", *SMALL, "debug=fast_dev_run"))
    with pytest.raises(MERError, match=r"too small for backbone resnet18.*min_image_size"):
        build(train_cfg("model=timm", "data.image_size=16", "data.input=frames"))
    build(train_cfg("model=timm", "model.backbone.min_image_size=16", "data.input=frames")).check_input(2, 1, 16)


def test_check_input_leaves_the_model_and_rng_alone(train_cfg):
    model = build(train_cfg(*SMALL))
    model.train()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    stats, rng = bn.running_mean.clone(), torch.get_rng_state()
    model.check_input(2, 1, 32)
    assert model.training and torch.equal(bn.running_mean, stats) and torch.equal(torch.get_rng_state(), rng)


# -- weights: offline cache and checkpoint files ----------------------------------------------------

@pytest.fixture
def offline_caches(tmp_path, monkeypatch):
    """Empty Hugging Face / torch hub caches, and any download attempt fails the test."""
    import timm.models._builder as builder
    import timm.models._hub as hub
    from huggingface_hub import constants

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    monkeypatch.setattr(hub, "hf_hub_download", no_network)
    monkeypatch.setattr(builder, "load_state_dict_from_url", no_network)
    return tmp_path / "hf"


def test_pretrained_without_cached_weights_fails_fast(train_cfg, offline_caches):
    started = time.monotonic()
    with pytest.raises(MERError) as info:
        TimmBackbone("resnet18", in_chans=1, pretrained=True)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "model.backbone.checkpoint=" in message and "timm/resnet18" in message and "never downloads" in message
    with pytest.raises(Exception) as info:
        train(train_cfg("model=timm", "model.backbone.pretrained=true", *SMALL, "debug=fast_dev_run"))
    assert "model.backbone.checkpoint=" in str(user_error(info.value))


def test_pretrained_from_the_local_hf_cache(offline_caches):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18")
    snapshot = offline_caches / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    save_file(source.state_dict(), str(snapshot / "model.safetensors"))
    (offline_caches / "models--timm--resnet18.a1_in1k" / "refs").mkdir()
    (offline_caches / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("0123abc")
    net = TimmBackbone("resnet18", in_chans=1, pretrained=True)
    assert net.weights.endswith("model.safetensors")
    assert torch.equal(net.model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    # one grey channel: timm's adaptation sums the RGB filters of the first convolution
    assert torch.allclose(net.model.conv1.weight[:, 0], source.conv1.weight.sum(1), atol=1e-6)


def test_checkpoint_file_is_loaded_with_weights_only(train_cfg, tmp_path):
    import timm

    source = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": source.state_dict(), "epoch": 7}, path)
    model = build(train_cfg("model=timm", f"model.backbone.checkpoint={path}"))
    assert torch.equal(model.backbone.model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert model.backbone.weights == str(path)

    class Payload:
        def __reduce__(self):
            return (print, ("arbitrary code ran",))

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": source.state_dict(), "extra": Payload()}, unsafe)
    with pytest.raises(MERError, match="weights_only=True"):
        TimmBackbone("resnet18", in_chans=1, checkpoint=str(unsafe))
    other = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34").state_dict(), other)
    with pytest.raises(MERError, match="another architecture"):
        TimmBackbone("resnet18", in_chans=1, checkpoint=str(other))
    with pytest.raises(MERError, match="no such file"):
        TimmBackbone("resnet18", checkpoint=str(tmp_path / "missing.pth"))


def test_backbone_from_a_mer_checkpoint(train_cfg, tmp_path):
    """A backbone fine-tuned by this project (e.g. on FER-2013) starts another run."""
    cfg = train_cfg("model=timm", "model.backbone.name=mobilenetv3_small_100", *SMALL, "debug=limit",
                    "trainer.max_epochs=1")
    train(cfg)
    ckpt = tmp_path / "run/folds/fold_00/checkpoints/last.ckpt"
    trained = torch.load(ckpt, weights_only=True)["state_dict"]
    net = TimmBackbone("mobilenetv3_small_100", in_chans=1, checkpoint=str(ckpt))
    assert torch.equal(net.model.conv_stem.weight, trained["backbone.model.conv_stem.weight"])
    assert set(load_weights_file(ckpt, "ckpt")) == set(net.model.state_dict())


# -- training options -------------------------------------------------------------------------------

def test_focal_loss():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    w = torch.tensor([0.5, 1.0, 2.0])
    ce = nn.functional.cross_entropy(logits, y, weight=w, label_smoothing=0.1)
    assert torch.allclose(focal_loss(logits, y, weight=w, gamma=0.0, label_smoothing=0.1), ce)
    assert torch.allclose(focal_loss(logits, y, gamma=0.0), nn.functional.cross_entropy(logits, y))
    assert focal_loss(logits, y, weight=w, gamma=2.0) < nn.functional.cross_entropy(logits, y, weight=w)


def test_loss_options_reach_the_module(train_cfg):
    model = build(train_cfg("model.loss=focal", "model.focal_gamma=1.5", "model.label_smoothing=0.1"))
    assert model.loss_name == "focal" and model.focal_gamma == 1.5 and model.label_smoothing == 0.1
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    model.class_weights.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(model.loss(logits, y), focal_loss(logits, y, model.class_weights, 1.5, 0.1))
    with pytest.raises(Exception) as info:
        build(train_cfg("model.loss=hinge"))
    assert "model.loss=hinge" in str(user_error(info.value))


def test_focal_balanced_smoothing_train(train_cfg, tmp_path):
    train(train_cfg("model.loss=focal", "model.class_weights=balanced", "model.label_smoothing=0.1", *SMALL,
                    "debug=limit", "trainer.max_epochs=1"))
    ckpt = torch.load(tmp_path / "run/folds/fold_00/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["loss"] == "focal" and "class_weights" in ckpt["state_dict"]


@pytest.mark.parametrize("model", [["model=cnn_bilstm"], ["model=timm", "model/head=transformer"]],
                         ids=["cnn_bilstm", "timm-transformer"])
def test_bf16_mixed_on_cpu(train_cfg, model):
    results = train(train_cfg(*model, "trainer.precision=bf16-mixed", *SMALL, "debug=fast_dev_run"))
    assert 0.0 <= results["metrics"]["protocol/acc"] <= 1.0


def test_gradient_clipping_from_the_trainer_config(train_cfg):
    """`trainer.gradient_clip_val` bounds each SGD step: lr x clip, whatever the raw gradient."""
    cfg = train_cfg("model/optimizer=sgd", "model.optimizer.lr=1.0", "model.optimizer.momentum=0", "model.optimizer.nesterov=false",
                    "model.optimizer.weight_decay=0", "model/scheduler=none", "model.dropout=0",
                    "trainer.gradient_clip_val=0.001", *SMALL)
    dm, model = fold_setup(cfg)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False, callbacks=[],
                                      max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                                      enable_progress_bar=False)
    assert trainer.gradient_clip_val == 0.001
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    trainer.fit(model, datamodule=dm)
    step = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    assert 0 < step.norm() <= 0.001 * 1.0001


def test_channels_last(train_cfg):
    cfg = train_cfg("model=timm", "model.channels_last=true", *SMALL)
    model = build(cfg).eval()
    assert model.backbone.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    plain = build(train_cfg("model=timm", *SMALL)).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 2, 1, 32, 32)
    assert torch.allclose(model(x), plain(x), atol=1e-5)
    train(train_cfg("model=timm", "model.channels_last=true", *SMALL, "debug=fast_dev_run"))


def test_freeze_keeps_the_backbone_fixed(train_cfg):
    dm, model = fold_setup(train_cfg("model.backbone.freeze=true", *SMALL))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    assert not model.backbone.training and model.head.training
    head_before = [p.clone() for p in model.head.parameters()]
    quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0).fit(model, datamodule=dm)
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights and BatchNorm statistics unchanged"
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.head.parameters()))


def test_freeze_epochs_unfreezes_after_warm_up(train_cfg):
    dm, model = fold_setup(train_cfg("model=timm", "model.backbone.name=mobilenetv3_small_100",
                                     "model.backbone.freeze_epochs=1", *SMALL))
    seen: list[tuple[int, bool, bool]] = []
    weights: list[torch.Tensor] = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 0:
                seen.append((trainer.current_epoch, module.backbone.model.conv_stem.weight.requires_grad,
                             module.backbone.training))

        def on_train_epoch_end(self, trainer, module):
            weights.append(module.backbone.model.conv_stem.weight.detach().clone())

    start = model.backbone.model.conv_stem.weight.detach().clone()
    assert not model.backbone.model.conv_stem.weight.requires_grad
    optimizer = model.configure_optimizers()["optimizer"]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    quiet_trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=0, callbacks=[Record()]).fit(model, datamodule=dm)
    assert seen == [(0, False, False), (1, True, True)]
    assert torch.equal(weights[0], start) and not torch.equal(weights[1], start)


def test_freeze_epochs_under_ddp_drops_gradients_instead(train_cfg):
    model = build(train_cfg("model.backbone.freeze_epochs=1", *SMALL))
    model._trainer = SimpleNamespace(world_size=2, current_epoch=0)
    model.setup("fit")
    params = list(model.backbone.parameters())
    assert all(p.requires_grad for p in params), "DDP must see every parameter when it wraps the model"
    model.on_train_epoch_start()
    for p in params:
        p.grad = torch.ones_like(p)
    model.on_before_optimizer_step(None)
    assert all(p.grad is None for p in params) and model.backbone_frozen
    model._trainer.current_epoch = 1
    model.on_train_epoch_start()
    for p in params:
        p.grad = torch.ones_like(p)
    model.on_before_optimizer_step(None)
    assert all(p.grad is not None for p in params)


def test_compile_flag_compiles_the_backbone(train_cfg, monkeypatch):
    """Wiring: model.compile=true compiles the backbone in place at setup (Dynamo's eager backend
    here; Inductor's C++ build takes ~30 s on 2 CPU cores: see the slow test below)."""
    compiled = []
    original = nn.Module.compile

    def eager_compile(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        return original(self, backend="eager")

    monkeypatch.setattr(nn.Module, "compile", eager_compile)
    results = train(train_cfg("model.compile=true", *SMALL, "debug=fast_dev_run", "runner.selection=last"))
    assert compiled == ["SmallCNN"] and 0.0 <= results["metrics"]["protocol/acc"] <= 1.0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile's Inductor backend needs a C++ compiler on CPU")
def test_compile_with_inductor_on_cpu(train_cfg):
    model = build(train_cfg("model.compile=true", *SMALL))
    model._trainer = SimpleNamespace(world_size=1)
    model.setup("fit")
    x = torch.randn(2, 2, 1, 32, 32)
    out = model(x)
    assert out.shape == (2, 3) and model.backbone._compiled_call_impl is not None
    assert set(model.state_dict()) == set(build(train_cfg(*SMALL)).state_dict()), "checkpoint keys unchanged"


def test_results_name_the_timm_model(train_cfg, tmp_path):
    train(train_cfg("model=timm", "model.backbone.name=mobilenetv3_small_100", "model/head=mean", *SMALL,
                    "debug=fast_dev_run"))
    assert json.loads((tmp_path / "run/results.json").read_text())["title"].endswith("timm_mobilenetv3_small_100")
