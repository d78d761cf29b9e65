"""The dataset registry agrees with conf/data/, the composite, the synthetic layouts and the docs."""

from __future__ import annotations

import re

import pytest
from hydra.utils import get_method
from omegaconf import OmegaConf

from mer_lightning.data import registry
from mer_lightning.data.readers import (
    dataset,
    dataset_names,
    datasets,
    markdown_table,
    read_composite,
)
from mer_lightning.data.readers.composite import source_names
from mer_lightning.data.synthetic import layout, layout_names
from mer_lightning.data.synthetic.generate import read_synthetic
from mer_lightning.utils.errors import MERError
from tests.conftest import ROOT, compose_cfg

DATA = ROOT / "conf" / "data"
SPECIAL = {"synthetic", "composite", "precomputed", "synthetic_lv"}  # data configs that are not one dataset


def _yaml(name: str) -> dict:
    """conf/data/<name>.yaml as written (interpolations left unresolved)."""
    return OmegaConf.to_container(OmegaConf.load(DATA / f"{name}.yaml"))


def test_every_registered_dataset_has_its_config_and_every_config_is_registered(tmp_path):
    configs = {p.stem for p in DATA.glob("*.yaml")}
    assert set(dataset_names()) == configs - SPECIAL
    for d in datasets():
        raw = _yaml(d.name)
        assert raw["name"] == d.name and raw["root"] == f"${{paths.data_dir}}/{d.folder}", d.name
        assert raw["reader"]["_target_"] == d.target and get_method(d.target) is d.reader, d.name
        cfg = compose_cfg("train.yaml", tmp_path, [f"data={d.name}"])
        assert (cfg.data.classes, cfg.protocol.name) == (d.classes, d.protocol), d.name


def test_synthetic_config_reads_through_the_new_reader():
    raw = _yaml("synthetic")
    assert get_method(raw["reader"]["_target_"]) is read_synthetic
    assert raw["reader"]["layout"] in layout_names()


def test_composite_sources_and_folders_come_from_the_registry(tmp_path):
    assert source_names() == [d.name for d in datasets() if d.composite] and "fer2013" not in source_names()
    raw = _yaml("composite")
    assert set(raw["reader"]["roots"]) == set(source_names()), "composite.yaml lists a root key per source"
    assert set(raw["reader"]["sources"]) <= set(source_names())
    with pytest.raises(MERError, match="composite source 'smic' \\(data.reader.roots.smic=.*/SMIC\\)"):
        read_composite(root=tmp_path, sources=["smic"])  # the default root is <root>/<registered folder>


def test_every_synthetic_layout_is_read_by_a_registered_reader():
    for name in layout_names():
        assert dataset(name).name == name == layout(name).name
        assert layout(name).emotions and len(layout(name).frame_size) == 2


def test_a_missing_root_names_the_registered_licence(tmp_path):
    for d in datasets():
        with pytest.raises(MERError, match=re.escape(d.request_from)):
            d.reader(tmp_path / "nowhere")


def test_the_docs_table_is_the_registry():
    assert markdown_table() in (ROOT / "docs" / "formats" / "README.md").read_text()


def test_a_name_registered_twice_is_refused_and_unknown_names_are_named():
    with pytest.raises(ValueError, match="'samm' is registered twice"):
        registry.register_dataset("samm", title="x", folder="x", fps=(), classes="all", protocol="loso",
                                  request_from="x")(lambda root: None)
    with pytest.raises(MERError, match="data=nope is not a known dataset; known: 4dme, cas2, casme"):
        dataset("nope")
