"""A composite over any set of sources (MEGC 2019's SAMM + CASME II + SMIC-HS, or e.g. SAMM + CASME II + 4DME).

Each source is a registered dataset (`mer_lightning.data.registry`; all but those registered with
`composite=False`, such as FER-2013's still images), read by its own reader from `roots[name]` or
`<root>/<its registered folder>`; subjects are prefixed with the source (`samm/006`, `casme2/sub01`,
`4dme/S13`) so that they stay unique across datasets, and every sample keeps its `source` (and its
`fps`) for the per-dataset breakdown of the report. Emotions are left as the sources wrote them: the `megc_3`
label scheme (the default of `data=composite`) maps them to negative / positive / surprise per
source, as MEGC 2019 does.

Keys (`data.reader.<key>`): `sources` (the source names, a list; a mapping name -> reader options
is accepted too), `roots` (name -> root; default `<root>/<the dataset's folder>`), `options` (name ->
that reader's own options, checked against its signature). `samm_root`, `casme2_root`, `smic_root` are
the former keys, still accepted: a source given a root this way is read even if not listed.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path

from mer_lightning.data.registry import Dataset, datasets
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.instantiate import check_keys

MEGC = ("samm", "casme2")  # the default sources: MEGC 2019's composite without SMIC


def source_names() -> list[str]:
    """The datasets a composite may read, by name."""
    return [d.name for d in datasets() if d.composite]


def source(name: str, key: str = "data.reader.sources") -> Dataset:
    """The registered dataset `name`, or a MERError naming the key `key.name` and the known sources."""
    found = {d.name: d for d in datasets() if d.composite}.get(name)
    if found is None:
        raise MERError(f"{key}.{name} is not a source of the composite; known: {', '.join(source_names())}")
    return found


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
        source(name, "data.reader.options")
        per_source.setdefault(name, {}).update(dict(opts or {}))
        where.setdefault(name, f"data.reader.options.{name}")
    names = list(dict.fromkeys([*names, *legacy]))
    roots = {**{str(k): v for k, v in dict(roots or {}).items() if v}, **legacy}
    for name in roots:
        source(name, "data.reader.roots")
    if not names:
        raise MERError("data=composite needs at least one source: data.reader.sources=[samm,casme2,...]; "
                       f"known: {', '.join(source_names())}")
    readers = {}
    for name in names:
        readers[name] = reader = source(name).reader
        check_keys(reader, list(per_source.get(name, {})), where.get(name, f"data.reader.options.{name}"),
                   shown_known=[k for k in inspect.signature(reader).parameters if k != "root"])
    merged = SampleTable([])
    for name in names:
        path = roots.get(name) or (Path(str(root)) / source(name).folder if root else None)
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
