"""From annotation rows to samples: the one collector of a sheet's clip rows (every sheet-based reader
uses it) and the checks that turn a clip into a `Sample` or a skip naming the file and row.

Quirks handled here, for every sheet-based reader: a clip listed on two or more rows (identical rows
are read once and counted as `duplicate_rows_merged`; rows that disagree on emotion or frames leave
the clip out, naming the rows); sheet cells used as folder names that would lead out of the dataset
(`..`, `a/b`, absolute paths) skip their row (`_folders.unsafe_cells`); frames missing, out of the
annotated span or damaged, and emotions the dataset does not have, skip the clip.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from mer_lightning.data.readers._folders import (
    Folders,
    check_frame_files,
    clip_span,
    numbered_frames,
    unsafe_cells,
)
from mer_lightning.data.readers._sheet import Sheet, as_int, cell_text
from mer_lightning.data.samples import Sample, SampleTable

log = logging.getLogger(__name__)


@dataclass
class ClipRow:
    """One sheet row naming a clip, its cells already in the reader's terms (`sub01`, `happiness`)."""

    number: int  # the row number the spreadsheet shows
    subject: str
    clip: str
    emotion: str
    onset: int | None
    apex: int | None
    offset: int | None
    extra: dict = field(default_factory=dict)  # the reader's own cells (CASME's ApexF2, DFME's fps): not compared

    @classmethod
    def from_record(cls, record: dict, clip: str | None = None, **extra) -> ClipRow:
        """The row of a `sheet_records` record (after `apply_corrections`); `clip` (default: its filename)."""
        return cls(record["row"], record["subject"], record["filename"] if clip is None else clip, record["emotion"],
                   record["onset"], record["apex"], record["offset"], extra)


class SheetClips:
    """The clip rows of one sheet, grouped by (subject, clip) in sheet order, and the table they go to.

    `add` lists a row, or skips it now when a cell it takes a folder name from is not a single folder
    name (`guard`; `inside` says where sheet paths must stay, for the message); `clips` yields one row
    per clip: identical rows merged, rows that differ leave the clip out (reading both would test the
    clip twice and let a cache keep either label); `read` checks the clip on disk and adds its sample,
    or the reason it is skipped, naming the file and row."""

    def __init__(self, dataset: str, sheet: str, inside: str | Path, table: SampleTable | None = None,
                 compare: tuple[str, ...] = ()):
        self.dataset, self.sheet, self.inside = dataset, sheet, inside
        self.compare = compare  # cells of `ClipRow.extra` that must agree too (data=precomputed's path)
        self.table = table if table is not None else SampleTable([])
        self._listed: dict[tuple[str, str], list[ClipRow]] = {}

    def sample_id(self, row: ClipRow) -> str:
        return f"{self.dataset}/{row.subject}/{row.clip}"

    def where(self, row: ClipRow) -> str:
        return f"{self.sheet} row {row.number}"

    def skip(self, row: ClipRow, problem: str) -> None:
        self.table.skip(self.sample_id(row), f"{self.where(row)}: {problem}")

    def guard(self, row: ClipRow, folders: Sequence[tuple[str, str]]) -> bool:
        """Whether the (column, cell) pairs whose cells name folders are safe; if not, `row` is skipped."""
        problem = unsafe_cells(folders, self.inside)
        if problem:
            self.skip(row, problem)
        return not problem

    def add(self, row: ClipRow, folders: Sequence[tuple[str, str]] = ()) -> None:
        """List `row` under its clip, unless `guard(row, folders)` skips it."""
        if self.guard(row, folders):
            self._listed.setdefault((row.subject, row.clip), []).append(row)

    def clips(self) -> Iterator[ClipRow]:
        """One row per clip listed, in sheet order (the first of identical rows)."""
        for rows in self._listed.values():
            if len(rows) == 1 or self._agree(rows):
                yield rows[0]

    def _agree(self, rows: list[ClipRow]) -> bool:
        numbers = [str(r.number) for r in rows]
        where = f"{self.sheet} rows {', '.join(numbers[:-1])} and {numbers[-1]}"
        sample_id = self.sample_id(rows[0])
        clip = sample_id.split("/", 1)[1]
        differ = []
        for name in ("emotion", "onset", "apex", "offset", *self.compare):
            cells = [getattr(r, name) if name in ("emotion", "onset", "apex", "offset") else r.extra.get(name)
                     for r in rows]
            values = ["missing" if cell is None else str(cell) for cell in cells]
            if len(set(values)) > 1:
                differ.append(f"{name} ({' vs '.join(values)})")
        if not differ:
            self.table.count("duplicate_rows_merged", len(rows) - 1)
            log.warning("%s list %s with the same emotion and frames: read once (keep one row per clip)", where, clip)
            return True
        reason = f"{where} list {clip} with different {', '.join(differ)}: clip left out; keep one row per clip"
        self.table.skip(sample_id, reason)
        log.warning("Skipped %s: %s", sample_id, reason)
        return False

    def read(self, row: ClipRow, clip_dir: Path, emotions: tuple[str, ...], fps: float = 0.0) -> None:
        add_clip(self.table, dataset=self.dataset, subject=row.subject, clip=row.clip, emotion=row.emotion,
                 onset=row.onset, apex=row.apex, offset=row.offset, clip_dir=clip_dir, where=self.where(row),
                 emotions=emotions, fps=fps)


def sheet_records(sheet: Sheet, subject: Callable[[object], str], spellings: dict[str, str] | None = None) -> list[dict]:
    """The sheet's rows as records, the form `_sheet.apply_corrections` fixes: `row`, `subject` (the cell
    through `subject`), `filename`, `onset`, `apex`, `offset` (numbers or None), `emotion` (`emotion_name`),
    and the sheet's other columns as read."""
    return [{**cells, "row": number, "subject": subject(cells["subject"]), "filename": cell_text(cells["clip"]),
             "onset": as_int(cells["onset"]), "apex": as_int(cells.get("apex")), "offset": as_int(cells["offset"]),
             "emotion": emotion_name(cells["emotion"], spellings)}
            for number, cells in sheet.rows()]


def subject_name(cell, folder: str) -> str:
    """The subject folder of a Subject cell: an integer through `folder` (`sub{:02d}`: 1 -> sub01), else
    the cell as written."""
    number = as_int(cell)
    return folder.format(number) if number is not None else cell_text(cell)


def emotion_name(cell, spellings: dict[str, str] | None = None) -> str:
    """An emotion cell in lower case, variants mapped to the dataset's one name by `spellings`."""
    emotion = cell_text(cell).lower()
    return (spellings or {}).get(emotion, emotion)


def unknown_emotion(emotion: str, known: tuple[str, ...]) -> str:
    """'' for a known emotion string, else the reason to skip the sample."""
    if emotion in known:
        return ""
    return f"unknown emotion '{emotion}' (expected one of {', '.join(known)})"


def add_clip(table: SampleTable, *, dataset: str, subject: str, clip: str, emotion: str, onset, apex, offset,
             clip_dir: Path, where: str, emotions: tuple[str, ...], fps: float = 0.0) -> None:
    """Append one annotated clip to `table`, or record why it is skipped (`where`: file and row).

    Checks, in order: the emotion is one of the dataset's `emotions`; onset and offset are numbers;
    the clip folder exists; every frame from onset to offset is on disk and whole. An apex that is
    missing ('/') or outside onset..offset becomes the middle frame, counted as `apex_missing`.
    `fps`: the recording's frame rate, kept on the sample (0: unknown).
    """
    sample_id = f"{dataset}/{subject}/{clip}"
    onset, apex, offset = as_int(onset), as_int(apex), as_int(offset)
    problem = unknown_emotion(emotion, emotions)
    if not problem and (onset is None or offset is None):
        problem = "onset/offset not numbers"
    if not problem and not clip_dir.is_dir():
        problem = f"clip folder {clip_dir} does not exist"
    span = []
    if not problem:
        span, problem = clip_span(numbered_frames(clip_dir), onset, offset)
        problem = problem or check_frame_files(span)
    if problem:
        table.skip(sample_id, f"{where}: {problem}")
        return
    if apex is None or not onset <= apex <= offset:
        apex = (onset + offset) // 2
        table.count("apex_missing")
    table.samples.append(Sample(
        dataset=dataset, subject=subject, clip=clip, emotion=emotion,
        frames=tuple(p for _, p in span), frame_numbers=tuple(n for n, _ in span),
        onset=onset, apex=apex, offset=offset, fps=float(fps),
    ))


def read_sheet_clips(sheet: Sheet, frames_dir: Path, *, dataset: str, subject_folder: str,
                     emotions: tuple[str, ...], spellings: dict[str, str] | None = None,
                     fps: float = 0.0) -> SampleTable:
    """The clips a coding sheet lists (columns subject, clip, onset, apex, offset, emotion), checked
    against the frames under `frames_dir/<subject>/<clip>` (CASME II, SAMM).

    Integer subjects become folders by `subject_folder` (`sub{:02d}`: 1 -> sub01); emotions are lower
    case, with `spellings` mapping variants to one name; folders are matched as `Folders` does."""
    clips = SheetClips(dataset, sheet.path.name, f"{frames_dir}{os.sep}<subject>{os.sep}")
    names = sheet.columns
    for number, cells in sheet.rows():
        subject, clip = subject_name(cells["subject"], subject_folder), cell_text(cells["clip"])
        clips.add(ClipRow(number, subject, clip, emotion_name(cells["emotion"], spellings), as_int(cells["onset"]),
                          as_int(cells["apex"]), as_int(cells["offset"])),
                  folders=((names.label("subject"), subject), (names.label("clip"), clip)))
    folders = Folders()
    for row in clips.clips():
        clips.read(row, folders.find(frames_dir, row.subject, row.clip), emotions, fps)
    return clips.table
