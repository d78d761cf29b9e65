"""A composite over any set of sources (MEGC 2019's SAMM + CASME II + SMIC-HS, or e.g. SAMM + CASME II + 4DME).

Each source is read by its own reader, found by name in `SOURCES` (`name -> "module:function"`,
imported only when the source is used, so a source whose reader is not installed fails only when
asked for); subjects are prefixed with the source (`samm/006`, `casme2/sub01`, `4dme/S13`) so that
they stay unique across datasets, and every sample keeps its `source` (and its `fps`) for the
per-dataset breakdown of the report. Emotions are left as the sources wrote them: the `megc_3`
label scheme (the default of `data=composite`) maps them to negative / positive / surprise per
source, as MEGC 2019 does.

Keys (`data.reader.<key>`): `sources` (the source names, a list; a mapping name -> reader options
is accepted too), `roots` (name -> root; default `<root>/<FOLDERS[name]>`), `options` (name -> that
reader's own options, checked against its signature). `samm_root`, `casme2_root`, `smic_root` are
the former keys, still accepted: a source given a root this way is read even if not listed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path

from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.instantiate import check_keys

SOURCES = {  # name -> the reader, imported on use
    "samm": "mer_lightning.data.readers.samm:read_samm",
    "casme2": "mer_lightning.data.readers.casme2:read_casme2",
    "smic": "mer_lightning.data.readers.smic:read_smic",
    "4dme": "mer_lightning.data.readers.fourdme:read_4dme",
    "dfme": "mer_lightning.data.readers.dfme:read_dfme",
    "casme3": "mer_lightning.data.readers.casme3:read_casme3",
    "casme": "mer_lightning.data.readers.casme:read_casme",
    "mmew": "mer_lightning.data.readers.mmew:read_mmew",
}
FOLDERS = {  # name -> its folder under `root` (the same as each data config's default root)
    "samm": "SAMM", "casme2": "CASME2", "smic": "SMIC", "4dme": "4DME", "dfme": "DFME", "casme3": "CASME3",
    "casme": "CASME", "mmew": "MMEW",
}
MEGC = ("samm", "casme2")


def known_source(name: str, key: str) -> None:
    """A MERError naming the key `key.name` when `name` is not a source of the composite."""
    if name not in SOURCES:
        raise MERError(f"{key}.{name} is not a source of the composite; known: {', '.join(SOURCES)}")


def source_reader(name: str, key: str = "data.reader.sources"):
    """The reader function of source `name` (imported now), or a MERError naming the key and the known sources."""
    known_source(name, key)
    module, function = SOURCES[name].split(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise MERError(f"composite source '{name}': its reader {SOURCES[name]} is not available in this "
                       f"version ({type(err).__name__}: {err})") from None


def read_composite(root=None, sources=None, roots: Mapping | None = None, options: Mapping | None = None,
                   samm_root: str | None = None, casme2_root: str | None = None,
                   smic_root: str | None = None) -> SampleTable:
    """Read each source with its reader and root and merge them (see the module doc for the keys).

    `sources=None` reads the sources given a `<name>_root`, else SAMM + CASME II (MEGC). A source, or an
    option its reader does not take, is a MERError naming the key.
    """
    legacy = {name: path for name, path in (("samm", samm_root), ("casme2", casme2_root), ("smic", smic_root))
              if path}
    per_source: dict[str, dict] = {}
    where: dict[str, str] = {}
    if isinstance(sources, Mapping):
        names = list(sources)
        for name, opts in sources.items():
            per_source[name], where[name] = dict(opts or {}), f"data.reader.sources.{name}"
    elif isinstance(sources, str):
        names = [sources]
    elif sources is not None:
        names = [str(name) for name in sources]
    else:
        names = [] if legacy else list(MEGC)
    for name, opts in dict(options or {}).items():
        known_source(name, "data.reader.options")
        per_source.setdefault(name, {}).update(dict(opts or {}))
        where.setdefault(name, f"data.reader.options.{name}")
    names = list(dict.fromkeys([*names, *legacy]))
    roots = {**{str(k): v for k, v in dict(roots or {}).items() if v}, **legacy}
    for name in roots:
        known_source(name, "data.reader.roots")
    if not names:
        raise MERError("data=composite needs at least one source: data.reader.sources=[samm,casme2,...]; "
                       f"known: {', '.join(SOURCES)}")
    readers = {}
    for name in names:
        readers[name] = reader = source_reader(name)
        check_keys(reader, list(per_source.get(name, {})), where.get(name, f"data.reader.options.{name}"),
                   shown_known=[k for k in inspect.signature(reader).parameters if k != "root"])
    merged = SampleTable([])
    for name in names:
        path = roots.get(name) or (Path(str(root)) / FOLDERS[name] if root else None)
        if not path:
            raise MERError(f"composite source '{name}' has no root: set data.reader.roots.{name}=/path/to/it "
                           "(or data.root to the folder holding the sources)")
        try:
            part = readers[name](path, **per_source.get(name, {}))
        except MERError as err:
            raise MERError(f"composite source '{name}' (data.reader.roots.{name}={path}): {err}") from None
        merged.samples += [s.with_(dataset="composite", source=name, subject=f"{name}/{s.subject}")
                           for s in part.samples]
        merged.skipped += part.skipped
        for note, n in part.notes.items():
            merged.count(f"{name}/{note}", n)
    return merged
