"""The datasets this package reads: one entry each, registered by its reader module (as timm's models).

A reader module `mer_lightning/data/readers/<name>.py` decorates its reader with
`@register_dataset(...)`; that entry is the only list of datasets. The composite reads its sources and
their default folders here, the synthetic writers are read back by the reader of the dataset they
imitate, `inspect` prints what is registered of the datasets it read, and the table of datasets in
the docs is `markdown_table()` (`python -m mer_lightning.data.readers` prints it). Each registered
name has its `conf/data/<name>.yaml` (a test checks that they agree).

Query it through `mer_lightning.data.readers` (`dataset`, `datasets`, `dataset_names`): importing
that package imports every reader module, so every dataset is registered by then. This module
imports nothing heavy, so that reader modules can register themselves into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mer_lightning.utils.errors import MERError


@dataclass(frozen=True)
class Dataset:
    """What the package knows of one dataset, besides its reader's own module."""

    name: str  # `data=<name>`, the samples' `dataset`, the composite's source name
    title: str  # as people write it, for messages: "CASME II"
    reader: Callable  # read_<name>(root, **options) -> SampleTable (a long-video reader: VideoTable)
    folder: str  # its folder under `paths.data_dir` (a config's default root, a composite source's default)
    fps: tuple[float, ...]  # frame rates of its recordings (several for DFME's parts; none for still images)
    classes: str  # default label scheme (`classes` of conf/data/<name>.yaml; see labels.py)
    protocol: str  # default protocol (conf/data/<name>.yaml's protocol override)
    request_from: str  # where the licence is requested (a missing root says so)
    composite: bool = True  # may be a source of `data=composite` (clips of subjects, not FER-2013's stills)
    videos: bool = False  # long videos with intervals (spotting: `python -m mer_lightning.spot data=<name>`)

    @property
    def target(self) -> str:
        """The reader as a config's `_target_` names it."""
        return f"{self.reader.__module__}.{self.reader.__name__}"


DATASETS: dict[str, Dataset] = {}  # name -> dataset: filled by the reader modules (query it through the readers)


def register_dataset(name: str, *, title: str, folder: str, fps: tuple[float, ...], classes: str, protocol: str,
                     request_from: str, composite: bool = True, videos: bool = False) -> Callable[[Callable], Callable]:
    """A decorator for a reader function: registers its dataset under `name` and returns the reader
    (`videos`: a long-video reader, returning a `VideoTable`; never a composite source)."""

    def register(reader: Callable) -> Callable:
        known = DATASETS.get(name)
        if known is not None and known.target != f"{reader.__module__}.{reader.__name__}":
            raise ValueError(f"dataset '{name}' is registered twice: by {known.target} and by {reader.__module__}")
        DATASETS[name] = Dataset(name, title, reader, folder, tuple(float(f) for f in fps), classes, protocol,
                                  request_from, composite and not videos, videos)
        return reader

    return register


def dataset_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(DATASETS)


def datasets() -> list[Dataset]:
    """Every registered dataset, sorted by name."""
    return [DATASETS[name] for name in dataset_names()]


def dataset(name: str, key: str = "data") -> Dataset:
    """The entry of `name`, or a MERError naming the key it came from and the registered names."""
    if name not in DATASETS:
        raise MERError(f"{key}={name} is not a known dataset; known: {', '.join(dataset_names())}")
    return DATASETS[name]


def markdown_table() -> str:
    """The docs' table of datasets (docs/formats/README.md holds it; a test keeps it in step)."""
    lines = ["| `data=` | dataset | folder under `paths.data_dir` | fps | default `data.classes` | protocol "
             "| composite source |", "|---|---|---|---|---|---|---|"]
    for d in datasets():
        fps = "/".join(f"{f:g}" for f in d.fps) or "still images"
        source = "yes" if d.composite else "no (long videos: spotting)" if d.videos else "no"
        lines.append(f"| `{d.name}` | {d.title} | `{d.folder}` | {fps} | `{d.classes}` | `{d.protocol}` | {source} |")
    return "\n".join(lines)
