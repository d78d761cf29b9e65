"""From annotation rows to long videos: the one collector of a long-video sheet's interval rows (CAS(ME)^2,
SAMM-LV and CAS(ME)^3's long videos use it) and the checks that turn a video folder and its rows into a
`Video`, or a skip naming the file and row.

Each row is checked on its own first: onset and offset are numbers, onset is not after offset, the
type is micro or macro; cells used as folder names pass the path guard (`_folders.unsafe_cells`).
Then against its video: the folder exists and holds numbered frames; an interval wholly outside the
frames on disk is skipped; one that runs past the first or last frame is clipped to it and counted
(`clipped_to_video`: SAMM-LV's 020_6_5 ends at 5476 of 5001 frames); an apex that is missing or
outside the interval becomes its middle frame (`apex_missing`). Identical rows are read once
(`duplicate_rows_merged`). A skipped row is one line naming the sheet and row; the video keeps its
other intervals. Frames are listed, never decoded here: a truncated frame is found when a spotter
streams the video (the video goes on; the gap is reported).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from mer_lightning.data.readers._folders import numbered_frames, unsafe_cells
from mer_lightning.data.readers._sheet import cell_text
from mer_lightning.data.videos import Interval, Video, VideoTable

log = logging.getLogger(__name__)


def interval_type(cell) -> str:
    """`micro` / `macro` from `micro-expression`, `Micro - 1/2`, `Macro`, `Macro-expression`; '' otherwise."""
    text = cell_text(cell).lower()
    return "micro" if text.startswith("micro") else "macro" if text.startswith("macro") else ""


def frame_number(cell) -> int | None:
    """A frame number from a sheet cell, fractions rounded half up (SAMM-LV's 566.5 -> 567, as the
    organisers round); None for blanks, '/' and text."""
    text = cell_text(cell)
    try:
        value = float(text)
    except ValueError:
        return None
    return int(math.floor(value + 0.5)) if math.isfinite(value) else None


@dataclass
class IntervalRow:
    """One sheet row naming an interval of a video, its cells already in the reader's terms."""

    number: int  # the row number the spreadsheet shows
    subject: str  # the subject as the video ids spell it (`s15`, `006`, `spNO.1`)
    video: str  # the video's name (`15_0101disgustingteeth`, `006_1`, `a`)
    start: int | None
    apex: int | None
    end: int | None
    type: str  # micro | macro ('' when the cell says neither)
    emotion: str = ""
    type_cell: str = ""  # the type as written (messages)

    def key(self) -> tuple:
        return self.start, self.apex, self.end, self.type, self.emotion


class VideoRows:
    """The interval rows of one sheet, grouped by video in sheet order, and the VideoTable they go to.

    `add` checks a row on its own (skipping it, named, when it cannot be an interval); `build` finds each
    video's folder through the reader's `locate(subject, video)` and checks every row against the frames
    on disk (see the module doc)."""

    def __init__(self, dataset: str, sheet: str, inside: str | Path, fps: float, table: VideoTable | None = None):
        self.dataset, self.sheet, self.inside, self.fps = dataset, sheet, inside, float(fps)
        self.table = table if table is not None else VideoTable([])
        self._rows: dict[tuple[str, str], list[IntervalRow]] = {}

    def where(self, row: IntervalRow) -> str:
        return f"{self.sheet} row {row.number}"

    def skip(self, row: IntervalRow, problem: str) -> None:
        shown = f"{row.start}-{row.end}" if row.start is not None and row.end is not None else f"row{row.number}"
        self.table.skip(f"{self.dataset}/{row.subject}/{row.video}@{shown}", f"{self.where(row)}: {problem}")

    def add(self, row: IntervalRow, folders: Sequence[tuple[str, str]] = ()) -> None:
        """List `row` under its video, or skip it now (one line naming the row) when it cannot be one."""
        problem = unsafe_cells(folders, self.inside)
        if not problem and (row.start is None or row.end is None):
            problem = "onset/offset not numbers"
        if not problem and row.start > row.end:
            problem = f"onset {row.start} is after offset {row.end}; fix the row (or remove it)"
        if not problem and not row.type:
            problem = f"unknown expression type '{row.type_cell}' (expected micro or macro)"
        if problem:
            self.skip(row, problem)
            return
        self._rows.setdefault((row.subject, row.video), []).append(row)

    def build(self, locate: Callable[[str, str], Path | None], *, cropped: bool = False, source: str = "",
              name: Callable[[str, str], str] | None = None) -> VideoTable:
        """One `Video` per video with rows whose folder `locate(subject, video)` finds; `name(subject, video)`
        (default: the video as the rows spell it) is its name in ids and outputs."""
        for (subject, video), rows in self._rows.items():
            folder = locate(subject, video)
            if folder is None or not folder.is_dir():
                shown = folder if folder is not None else f"{self.inside}/{subject}/{video}"
                for row in rows:
                    self.skip(row, f"video folder {shown} does not exist")
                continue
            frames = numbered_frames(folder)
            if not frames:
                for row in rows:
                    self.skip(row, f"no image files in the video folder {folder}")
                continue
            intervals = self._intervals(rows, frames[0][0], frames[-1][0])
            if not intervals:
                continue
            self.table.videos.append(Video(
                dataset=self.dataset, subject=subject, name=name(subject, video) if name else video, folder=folder,
                names=tuple(p.name for _, p in frames), numbers=tuple(n for n, _ in frames), fps=self.fps,
                intervals=tuple(intervals), cropped=cropped, source=source))
        return self.table

    def _intervals(self, rows: list[IntervalRow], first: int, last: int) -> list[Interval]:
        seen: dict[tuple, IntervalRow] = {}
        intervals = []
        for row in rows:
            if row.key() in seen:
                self.table.count("duplicate_rows_merged")
                log.warning("%s repeats %s row %s: read once", self.where(row), self.sheet, seen[row.key()].number)
                continue
            seen[row.key()] = row
            if row.end < first or row.start > last:
                self.skip(row, f"interval {row.start}-{row.end} is outside the video's frames on disk ({first}-{last})")
                continue
            start, end = max(row.start, first), min(row.end, last)
            if (start, end) != (row.start, row.end):
                self.table.count("clipped_to_video")
                log.warning("%s: interval %d-%d runs past the video's frames (%d-%d): clipped to %d-%d", self.where(row),
                            row.start, row.end, first, last, start, end)
            apex = row.apex
            if apex is None or not start <= apex <= end:
                apex = (start + end) // 2
                self.table.count("apex_missing")
            intervals.append(Interval(start, apex, end, row.type, row.emotion, self.where(row)))
        return intervals
