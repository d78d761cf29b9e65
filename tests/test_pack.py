"""Packed folds (runner.pack): K folds trained together as one stacked model give each fold what it gets
alone (loop execution: bitwise on CPU; vmap: to rounding), with every fold's own folder, checkpoint and
resume; the stackable LSTM equals nn.LSTM."""

import json
from functools import partial

import pandas as pd
import pytest
import torch
from torch import nn

from mer_lightning.models.stacked import StackableRNN, StackedModels, VmapForward
from mer_lightning.runner.pack_module import objective
from mer_lightning.train import train
from tests.conftest import compose_cfg

# LOSO over the tiny realistic set (6 folds), a few short epochs, one torch thread per fold in every mode
FAST = ["protocol=loso", "trainer.limit_train_batches=3", "runner.threads_per_fold=1", "report.reference=null"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_root):
    """The sequential run and the packed run (all 6 folds in one pack) of one configuration."""
    from tests.conftest import TINY

    base = tmp_path_factory.mktemp("pack")
    common = [*TINY, f"data.root={tiny_root}", *FAST, "trainer.max_epochs=2", "model=ststnet"]
    out = {}
    for name, extra in (("sequential", []), ("packed", ["runner.pack=6"])):
        out[name] = (train(compose_cfg("train.yaml", base / name, [*common, *extra])), base / name)
    return out


def _predictions(run_dir):
    return pd.read_csv(run_dir / "predictions.csv")


def test_packed_folds_are_the_sequential_folds(runs):
    (seq, seq_dir), (packed, pack_dir) = runs["sequential"], runs["packed"]
    a, b = _predictions(seq_dir), _predictions(pack_dir)
    assert list(a.fold) == list(b.fold) and list(a.sample_id) == list(b.sample_id), "same folds, same test clips"
    # loop execution on CPU: the fold's own arithmetic, so bitwise its predictions and its metrics
    assert (seq_dir / "predictions.csv").read_text() == (pack_dir / "predictions.csv").read_text()
    assert packed["metrics"] == seq["metrics"]
    for k in range(6):
        one = json.loads((seq_dir / f"folds/fold_{k:02d}/fold.json").read_text())
        two = json.loads((pack_dir / f"folds/fold_{k:02d}/fold.json").read_text())
        assert two["selection"] == one["selection"] and two["details"]["scores"] == one["details"]["scores"]
        assert two["details"]["curves"]["tested"] == one["details"]["curves"]["tested"]
        assert (pack_dir / f"folds/fold_{k:02d}/val_predictions.csv").read_text() == \
            (seq_dir / f"folds/fold_{k:02d}/val_predictions.csv").read_text()
        assert (pack_dir / f"folds/fold_{k:02d}/selection/choice.json").is_file()
        assert (pack_dir / f"csv/fold_{k:02d}/metrics.csv").is_file(), "each fold's own logger run"


def test_a_packed_checkpoint_evaluates_alone_to_its_predictions(runs, tmp_path):
    from mer_lightning.eval import evaluate

    pack_dir = runs["packed"][1]
    ckpt = pack_dir / "folds/fold_02" / json.loads((pack_dir / "folds/fold_02/fold.json").read_text())["checkpoint"]
    saved = torch.load(ckpt, weights_only=True)
    assert saved["mer"]["fold"] == 2 and saved["mer"]["stage"] == "final"
    cfg = compose_cfg("eval.yaml", tmp_path / "eval", [f"ckpt_path={ckpt}", "extras.print_config=false",
                                                      "trainer.accelerator=cpu"])
    evaluate(cfg)
    alone = _predictions(tmp_path / "eval")
    own = pd.read_csv(pack_dir / "folds/fold_02/predictions.csv")
    assert alone.drop(columns="fold").equals(own.drop(columns="fold")), "the fold's own slice, its own predictions"


def test_batchnorm_statistics_stay_per_fold(runs):
    pack_dir, seq_dir = runs["packed"][1], runs["sequential"][1]
    stats = []
    for k in (0, 1):
        packed = torch.load(pack_dir / f"folds/fold_{k:02d}/checkpoints/last.ckpt", weights_only=True)["state_dict"]
        alone = torch.load(seq_dir / f"folds/fold_{k:02d}/checkpoints/last.ckpt", weights_only=True)["state_dict"]
        keys = [n for n in packed if n.endswith("running_mean")]
        assert keys and all(torch.equal(packed[n], alone[n]) for n in keys), "each fold's own statistics"
        stats.append(torch.cat([packed[n] for n in keys]))
    assert not torch.equal(stats[0], stats[1]), "two folds' BatchNorm statistics differ"


def test_vmap_execution_agrees_to_rounding(runs, tmp_path, tiny_root):
    from tests.conftest import TINY

    seq_dir = runs["sequential"][1]
    cfg = compose_cfg("train.yaml", tmp_path / "vmap", [*TINY, f"data.root={tiny_root}", *FAST, "trainer.max_epochs=2",
                                                        "model=ststnet",
                                                        "runner.pack=6", "runner.pack_execution=vmap"])
    results = train(cfg)
    a, b = _predictions(seq_dir), _predictions(tmp_path / "vmap")
    probs = [c for c in a.columns if c.startswith("p_")]
    assert list(a.sample_id) == list(b.sample_id)
    assert (a[probs] - b[probs]).abs().max().max() < 1e-3, "grouped kernels sum in another order: rounding only"
    assert abs(results["metrics"]["protocol/uf1"] - runs["sequential"][0]["metrics"]["protocol/uf1"]) < 0.03


def test_an_interrupted_pack_resumes_where_it_stopped(train_cfg, tmp_path, monkeypatch):
    """A crash in the middle of the packed final training keeps each fold's last epoch; the rerun resumes
    every fold from its own checkpoint and gives the uninterrupted run's predictions."""
    from mer_lightning.runner import pack

    overrides = [*FAST, "trainer.max_epochs=3", "runner.selection=last", "runner.pack=3", "runner.folds=[0,1,2]"]
    whole = tmp_path / "whole"
    train(train_cfg(*overrides, out=whole))
    real = pack.PackedModule.on_train_epoch_end

    def crash_after_epoch_1(self):
        real(self)
        if self.member_epoch() == 1:
            raise RuntimeError("simulated crash after epoch 1")

    monkeypatch.setattr(pack.PackedModule, "on_train_epoch_end", crash_after_epoch_1)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(train_cfg(*overrides, out=out))
    for k in range(3):
        last = torch.load(out / f"folds/fold_{k:02d}/checkpoints/last.ckpt", weights_only=True)
        assert last["epoch"] == 1 and last["packed"]["epochs"] == 2 and not (out / f"folds/fold_{k:02d}/fold.json").exists()
    monkeypatch.setattr(pack.PackedModule, "on_train_epoch_end", real)
    train(train_cfg(*overrides, out=out))
    assert (out / "predictions.csv").read_text() == (whole / "predictions.csv").read_text()
    record = json.loads((out / "folds/fold_00/fold.json").read_text())
    assert record["details"]["curves"]["tested"]["epoch"] == [0, 1, 2]


def test_sigterm_in_a_packed_selection_pass_then_one_rerun_finishes(runs, tmp_path, tiny_root, monkeypatch):
    """SIGTERM while the folds' selection passes train together: exit 143 naming the pack, each split keeps
    its last epoch; the rerun resumes them (their random streams too) and gives the sequential predictions."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from mer_lightning.runner import pack
    from tests.conftest import TINY

    real = pack.PackedModule.training_step

    def sigterm_in_epoch_1(self, step, batch_idx):
        if self.members[0].stage == "select" and self.member_epoch() == 1:
            raise SIGTERMException()  # what Lightning raises at a batch boundary after SIGTERM
        return real(self, step, batch_idx)

    monkeypatch.setattr(pack.PackedModule, "training_step", sigterm_in_epoch_1)
    overrides = [*TINY, f"data.root={tiny_root}", *FAST, "trainer.max_epochs=2", "model=ststnet", "runner.pack=6"]
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        train(compose_cfg("train.yaml", out, overrides))
    assert stop.value.code == 143 and "folds 0-5 trained as one pack" in str(stop.value)
    assert (out / "folds/fold_03/selection/split_0/checkpoints/last.ckpt").is_file()
    monkeypatch.setattr(pack.PackedModule, "training_step", real)
    train(compose_cfg("train.yaml", out, overrides))
    assert (out / "predictions.csv").read_text() == (runs["sequential"][1] / "predictions.csv").read_text()


def test_a_fold_of_an_interrupted_pack_resumes_in_its_own_lightning_loop(train_cfg, tmp_path, monkeypatch):
    """A packed checkpoint is a Lightning checkpoint of the fold's own fit: rerun without packing, the
    interrupted fold continues from its last epoch."""
    from mer_lightning.runner import pack

    overrides = [*FAST, "trainer.max_epochs=3", "runner.selection=last", "runner.folds=[0,1]"]
    real = pack.PackedModule.on_train_epoch_end

    def crash_after_epoch_0(self):
        real(self)
        raise RuntimeError("simulated crash after epoch 0")

    monkeypatch.setattr(pack.PackedModule, "on_train_epoch_end", crash_after_epoch_0)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(train_cfg(*overrides, "runner.pack=2", out=out))
    monkeypatch.setattr(pack.PackedModule, "on_train_epoch_end", real)
    train(train_cfg(*overrides, out=out))  # runner.pack=1: each fold's own Lightning loop
    trained = pd.read_csv(out / "csv/fold_00/metrics.csv").dropna(subset=["train/loss"])
    assert list(trained.epoch.astype(int)) == [1, 2], "the fold resumed after its epoch 0"
    assert torch.load(out / "folds/fold_00/checkpoints/last.ckpt", weights_only=True)["epoch"] == 2


def test_linear_and_debug_runs_train_one_fold_after_another(train_cfg, tmp_path, caplog):
    from mer_lightning.runner.pack import pack_size

    assert pack_size(train_cfg("model=linear", "runner.pack=4"), None)[0] == 1
    assert "fast_dev_run" in pack_size(train_cfg("debug=fast_dev_run", "runner.pack=4"), None)[1]
    assert pack_size(train_cfg("runner.pack=4"), None) == (4, None)
    with caplog.at_level("WARNING"):
        train(train_cfg("protocol=loso", "runner.folds=[0,1]", "model=linear", "runner.pack=2", out=tmp_path / "lin"))
    assert "folds train one after another, since model=linear" in caplog.text


@pytest.mark.parametrize("mode", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers,bidirectional", [(1, True), (2, True), (2, False)])
def test_the_stackable_rnn_equals_torch_on_random_input(mode, layers, bidirectional):
    torch.manual_seed(0)
    rnn = mode(10, 7, num_layers=layers, batch_first=True, bidirectional=bidirectional)
    twin = StackableRNN.of(rnn)
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in rnn.named_parameters()]
    x = torch.randn(5, 6, 10)
    (out, h), (out2, h2) = rnn(x), twin(x)
    h, h2 = (h[0], h2[0]) if mode is nn.LSTM else (h, h2)
    assert torch.allclose(out, out2, atol=1e-6) and torch.allclose(h, h2, atol=1e-6)
    out.square().sum().backward()
    out2.square().sum().backward()
    for (name, p), q in zip(rnn.named_parameters(), twin.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_stacked_members_under_vmap_equal_each_model_alone():
    """Three cnn_bilstm models (BatchNorm, LSTM) as one vmapped call: each member's logits, loss and
    BatchNorm statistics are its own model's; the stacks are the members' own tensors."""
    from mer_lightning.models.backbones import SmallCNN
    from mer_lightning.models.heads import BiLSTMHead
    from mer_lightning.models.module import MERModule

    torch.manual_seed(0)
    models = [MERModule(SmallCNN(3, 32, pool=2, dropout=0.0), partial(BiLSTMHead), 5) for _ in range(3)]
    alone = [MERModule(SmallCNN(3, 32, pool=2, dropout=0.0), partial(BiLSTMHead), 5) for _ in range(3)]
    for a, m in zip(alone, models):
        a.load_state_dict(m.state_dict())
    stacked = StackedModels(models)
    with torch.no_grad():
        stacked.members[1].classifier[1].bias.add_(1.0)
    assert torch.equal(stacked.params["classifier.1.bias"][1], stacked.members[1].classifier[1].bias)
    alone[1].classifier[1].bias.data.add_(1.0)
    vmapped = VmapForward(stacked, objective)
    x, y = torch.randn(3, 4, 3, 3, 32, 32), torch.randint(0, 5, (3, 4))
    logits, losses = vmapped(None, x, y, [], {n: p.detach().requires_grad_() for n, p in stacked.params.items()},
                             training=True)
    for i, model in enumerate(alone):
        model.train()
        expected = model(x[i])
        assert torch.allclose(logits[i], expected, atol=1e-5)
        assert torch.allclose(losses[i], model.loss(expected, y[i]), atol=1e-5)
        mean = "backbone.features.1.running_mean"
        assert torch.allclose(stacked.buffers[mean][i], model.state_dict()[mean], atol=1e-6)
    assert not torch.allclose(stacked.buffers[mean][0], stacked.buffers[mean][1]), "per-member statistics"


@pytest.mark.slow
def test_packs_in_parallel_processes_give_the_sequential_predictions(runs, tmp_path, tiny_root):
    from tests.conftest import TINY

    cfg = compose_cfg("train.yaml", tmp_path / "both", [*TINY, f"data.root={tiny_root}", *FAST, "trainer.max_epochs=2",
                                                        "model=ststnet", "runner.pack=3", "runner.parallel=2"])
    train(cfg)
    assert (tmp_path / "both/predictions.csv").read_text() == (runs["sequential"][1] / "predictions.csv").read_text()
