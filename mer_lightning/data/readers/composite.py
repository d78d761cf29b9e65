"""The MEGC-style composite: SAMM + CASME II (+ SMIC-HS when its root is given) in one table.

Each source is read by its own reader; subjects are prefixed with the source (`samm/006`,
`casme2/sub01`, `smic/s1`) so that they stay unique across datasets, and every sample keeps its
`source` for the per-dataset breakdown of the report. Emotions are left as the sources wrote them:
the `megc_3` label scheme (the default of `data=composite`) maps them to negative / positive /
surprise per source, as MEGC 2019 does.
"""

from __future__ import annotations

import inspect

from mer_lightning.data.readers.casme2 import read_casme2
from mer_lightning.data.readers.samm import read_samm
from mer_lightning.data.readers.smic import read_smic
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError
from mer_lightning.utils.instantiate import check_keys

SOURCES = {"samm": read_samm, "casme2": read_casme2, "smic": read_smic}


def read_composite(root=None, samm_root: str | None = None, casme2_root: str | None = None,
                   smic_root: str | None = None, sources: dict | None = None) -> SampleTable:
    """Read each given source root (`samm_root`, `casme2_root`, `smic_root`; None leaves a source out)
    and merge them. `root` (the folder holding the sources) is only used by the config to place them.

    `sources` holds per-source reader options, e.g. `{"casme2": {"annotation_file": ...}}`; a source or
    an option its reader does not take is a MERError naming the key.
    """
    roots = {"samm": samm_root, "casme2": casme2_root, "smic": smic_root}
    sources = dict(sources or {})
    for name in sources:
        if name not in SOURCES:
            raise MERError(f"data.reader.sources.{name} is not a source of the composite; known: {', '.join(SOURCES)}")
        check_keys(SOURCES[name], list(sources[name] or {}), f"data.reader.sources.{name}",
                   shown_known=[k for k in inspect.signature(SOURCES[name]).parameters if k != "root"])
    chosen = {name: path for name, path in roots.items() if path}
    if not chosen:
        raise MERError("data=composite needs at least one source root: data.reader.samm_root=..., "
                       "data.reader.casme2_root=..., data.reader.smic_root=...")
    merged = SampleTable([])
    for name, path in chosen.items():
        try:
            part = SOURCES[name](path, **dict(sources.get(name) or {}))
        except MERError as err:
            raise MERError(f"composite source '{name}' (data.reader.{name}_root={path}): {err}") from None
        merged.samples += [s.with_(dataset="composite", source=name, subject=f"{name}/{s.subject}")
                           for s in part.samples]
        merged.skipped += part.skipped
        for note, n in part.notes.items():
            merged.count(f"{name}/{note}", n)
    return merged
