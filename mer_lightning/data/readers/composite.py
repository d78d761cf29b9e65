"""The MEGC-style composite: SAMM + CASME II (+ SMIC-HS when its root is given) in one table.

Each source is read by its own reader; subjects are prefixed with the source (`samm/006`,
`casme2/sub01`, `smic/s1`) so that they stay unique across datasets, and every sample keeps its
`source` for the per-dataset breakdown of the report. Emotions are left as the sources wrote them:
the `megc_3` label scheme (the default of `data=composite`) maps them to negative / positive /
surprise per source, as MEGC 2019 does.
"""

from __future__ import annotations

from mer_lightning.data.readers.casme2 import read_casme2
from mer_lightning.data.readers.samm import read_samm
from mer_lightning.data.readers.smic import read_smic
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

SOURCES = {"samm": read_samm, "casme2": read_casme2, "smic": read_smic}


def read_composite(root=None, samm: str | None = None, casme2: str | None = None, smic: str | None = None,
                   sources: dict | None = None, **_) -> SampleTable:
    """Read each given source root (`samm`, `casme2`, `smic`; None leaves a source out) and merge them.

    `sources` holds per-source reader options, e.g. `{"casme2": {"annotation_file": ...}}`.
    """
    roots = {"samm": samm, "casme2": casme2, "smic": smic}
    chosen = {name: path for name, path in roots.items() if path}
    if not chosen:
        raise MERError("data=composite needs at least one source root: data.samm_root=..., data.casme2_root=..., "
                       "data.smic_root=...")
    merged = SampleTable([])
    for name, path in chosen.items():
        try:
            part = SOURCES[name](path, **dict((sources or {}).get(name) or {}))
        except MERError as err:
            raise MERError(f"composite source '{name}' (data.{name}_root={path}): {err}") from None
        merged.samples += [s.with_(dataset="composite", source=name, subject=f"{name}/{s.subject}")
                           for s in part.samples]
        merged.skipped += part.skipped
        for note, n in part.notes.items():
            merged.count(f"{name}/{note}", n)
    return merged
