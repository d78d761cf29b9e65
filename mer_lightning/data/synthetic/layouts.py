"""The synthetic layouts: one per real dataset whose files a writer imitates, registered by the writer.

A writer module `writers/<dataset>.py` decorates its writer with `@register_layout(<dataset>, ...)`;
the layout is named after the dataset it imitates (a registered dataset, `mer_lightning.data.registry`)
and is read back by that dataset's reader. What a layout writes by default (its emotions, spelled as
the dataset spells them, and its frame size) is registered with it: `SyntheticSpec` reads it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mer_lightning.utils.errors import MERError


@dataclass(frozen=True)
class Layout:
    """One synthetic layout: `write(root, spec, **variant_options) -> root`, and what it writes by default."""

    name: str  # the dataset imitated (its reader reads the files)
    write: Callable
    emotions: tuple[str, ...]  # the default emotions, spelled as the dataset does
    frame_size: tuple[int, int]  # (width, height) of the frames written by default
    grayscale: bool = False  # frames rendered grey (a monochrome camera: SAMM)


LAYOUTS: dict[str, Layout] = {}  # name -> layout: filled by the writer modules, read through `layout()`


def register_layout(name: str, *, emotions: tuple[str, ...], frame_size: tuple[int, int],
                    grayscale: bool = False) -> Callable[[Callable], Callable]:
    """A decorator for a writer function: registers the layout `name` and returns the writer."""

    def register(write: Callable) -> Callable:
        known = LAYOUTS.get(name)
        if known is not None and known.write.__module__ != write.__module__:
            raise ValueError(f"synthetic layout '{name}' is registered twice: by {known.write.__module__} and by "
                             f"{write.__module__}")
        LAYOUTS[name] = Layout(name, write, tuple(emotions), (int(frame_size[0]), int(frame_size[1])), grayscale)
        return write

    return register


def layout_names() -> list[str]:
    """The registered layouts, sorted."""
    return sorted(LAYOUTS)


def layout(name: str) -> Layout:
    """The layout `name`, or a MERError naming `data.reader.layout` and the known ones."""
    if name not in LAYOUTS:
        raise MERError(f"data.reader.layout={name}: choose one of {layout_names()}")
    return LAYOUTS[name]


@dataclass(frozen=True)
class VideoLayout:
    """One long-video layout (spotting): `write(root, spec) -> root` and what it writes by default."""

    name: str  # the long-video dataset imitated (its reader reads the files)
    write: Callable
    fps: float
    emotions: tuple[str, ...]  # spelled as the dataset does
    frame_size: tuple[int, int]  # (width, height)
    micro_frames: tuple[int, int]  # a micro-expression's length, frames (min, max)
    macro_frames: tuple[int, int]
    grayscale: bool = False


VIDEO_LAYOUTS: dict[str, VideoLayout] = {}  # name -> layout: filled by the long-video writer modules


def register_video_layout(name: str, *, fps: float, emotions: tuple[str, ...], frame_size: tuple[int, int],
                          micro_frames: tuple[int, int], macro_frames: tuple[int, int],
                          grayscale: bool = False) -> Callable[[Callable], Callable]:
    """A decorator for a long-video writer: registers the layout `name` and returns the writer."""

    def register(write: Callable) -> Callable:
        known = VIDEO_LAYOUTS.get(name)
        if known is not None and known.write.__module__ != write.__module__:
            raise ValueError(f"synthetic long-video layout '{name}' is registered twice: by {known.write.__module__} "
                             f"and by {write.__module__}")
        VIDEO_LAYOUTS[name] = VideoLayout(name, write, float(fps), tuple(emotions), (int(frame_size[0]),
                                          int(frame_size[1])), tuple(micro_frames), tuple(macro_frames), grayscale)
        return write

    return register


def video_layout_names() -> list[str]:
    return sorted(VIDEO_LAYOUTS)


def video_layout(name: str) -> VideoLayout:
    """The long-video layout `name`, or a MERError naming `data.reader.layout` and the known ones."""
    if name not in VIDEO_LAYOUTS:
        raise MERError(f"data.reader.layout={name}: choose one of {video_layout_names()} (long videos)")
    return VIDEO_LAYOUTS[name]
