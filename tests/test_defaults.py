"""Defaults live in YAML: a constructor parameter that the configs set has no conflicting default in
code (none, the configs' own value, or where presets differ an `unset` sentinel: None / "")."""

import importlib
import inspect
from collections import defaultdict

import yaml

from tests.conftest import ROOT

CONF = ROOT / "conf"


def _target(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _literal(value) -> bool:
    return not (isinstance(value, str) and ("${" in value or value == "???")) and not isinstance(value, dict)


def _configs():
    """(file, target, {key: literal value}) for every config file with a `_target_` (experiments and
    Hydra's own excepted: recipes and plumbing, not defaults), plus the shared data keys."""
    for path in sorted(CONF.rglob("*.yaml")):
        relative = path.relative_to(CONF).as_posix()
        if relative.startswith(("experiment/", "hydra/", "hparams_search/", "debug/")):
            continue
        node = yaml.safe_load(path.read_text()) or {}
        if relative.startswith("data/"):  # a dataset's own choices over the shared keys (tested below)
            continue
        if isinstance(node, dict) and isinstance(node.get("_target_"), str) and node["_target_"].startswith("mer_lightning."):
            yield relative, node["_target_"], {k: v for k, v in node.items() if not k.startswith("_") and _literal(v)}


def test_code_defaults_agree_with_the_configs():
    values = defaultdict(lambda: defaultdict(set))
    for _, target, keys in _configs():
        for key, value in keys.items():
            values[target][key].add(repr(tuple(value) if isinstance(value, list) else value))
    conflicts = []
    for target, keys in values.items():
        params = inspect.signature(_target(target)).parameters
        for key, seen in keys.items():
            param = params.get(key)
            if param is None or param.default is inspect.Parameter.empty:
                continue
            default = repr(tuple(param.default) if isinstance(param.default, list) else param.default)
            if len(seen) == 1 and default not in seen:
                conflicts.append(f"{target}({key}={default}) but the configs say {seen.pop()}")
            elif len(seen) > 1 and param.default not in (None, ""):
                conflicts.append(f"{target}({key}={default}) but the presets differ: {sorted(seen)}")
    assert not conflicts, "\n".join(conflicts)


def test_the_data_defaults_are_the_shared_data_config():
    """MERDataModule and Preprocessing default to conf/_data.yaml, the keys every dataset shares."""
    from mer_lightning.data.preprocessing import Preprocessing

    shared = yaml.safe_load((CONF / "_data.yaml").read_text())
    fields = Preprocessing.__dataclass_fields__
    for key in ("input", "face", "frames", "num_frames", "image_size", "flow", "flow_size", "flow_scaling", "flow_scale"):
        assert fields[key].default == shared[key], key
    from mer_lightning.data.datamodule import MERDataModule

    params = inspect.signature(MERDataModule).parameters
    for key, value in shared.items():
        if key in params and _literal(value) and params[key].default is not inspect.Parameter.empty:
            assert params[key].default == value, f"MERDataModule({key}={params[key].default!r}) but _data.yaml says {value!r}"
