"""Long videos for spotting: the `Interval` and `Video` records, the `VideoTable` a long-video reader
returns, and frames streamed one at a time.

A long video (CAS(ME)^2, SAMM-LV, CAS(ME)^3 part A) is a folder of numbered frames and the intervals
annotated in it: every micro- and macro-expression with its first, apex and last frame (inclusive
frame numbers as in the release), its type and its emotion when the release gives one. A video
knows its frame files by name and number only: frames are decoded one at a time when a spotter
streams them (`iter_frames`), never all at once (SAMM-LV videos run to tens of thousands of frames).

`interval_clips` turns intervals into recognition clips: `datamodule.LongVideoData` (the data configs'
target) serves the labelled micro-expressions that way, so `python -m mer_lightning.train data=cas2`
trains a classifier on them and the spot-then-recognise runner trains its recogniser through the
same path. This module imports nothing heavy (the readers import it).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from mer_lightning.data.clips import BadFrame, read_gray_or_color
from mer_lightning.data.samples import Sample, SampleTable, Skip, printable
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

TYPES = ("micro", "macro")


@dataclass(frozen=True)
class Interval:
    """One annotated (or spotted) expression: inclusive frame numbers as in the release."""

    start: int
    apex: int
    end: int
    type: str  # micro | macro
    emotion: str = ""
    where: str = ""  # the sheet and row it was read from (messages)

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, eq=False)
class Video:
    """One long video: its frame files (`folder/names[i]` is frame `numbers[i]`, in order) and intervals.

    `cropped`: the frames are face crops already (no face detection needed); `source`: the dataset whose
    label scheme aliases apply (`casme3` for CAS(ME)^3's long videos); `split` is never set (a long video
    has no official part), kept for the protocols' sake.
    """

    dataset: str
    subject: str
    name: str
    folder: Path
    names: tuple[str, ...]
    numbers: tuple[int, ...]
    fps: float
    intervals: tuple[Interval, ...] = ()
    cropped: bool = False
    source: str = ""
    split: str = ""

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.subject}/{self.name}"

    @property
    def origin(self) -> str:
        return self.source or self.dataset

    @property
    def first(self) -> int:
        return self.numbers[0]

    @property
    def last(self) -> int:
        return self.numbers[-1]

    @property
    def n_frames(self) -> int:
        return len(self.numbers)

    def path(self, i: int) -> Path:
        return self.folder / self.names[i]

    def span(self, start: int, end: int) -> list[tuple[int, Path]]:
        """(number, path) of the frames on disk from `start` to `end` (inclusive)."""
        lo, hi = np.searchsorted(self.numbers, [start, end + 1])
        return [(self.numbers[i], self.path(i)) for i in range(int(lo), int(hi))]

    def gaps(self) -> list[tuple[int, int]]:
        """Runs of frame numbers missing between the first and last frame: [(first missing, last missing)]."""
        numbers = np.asarray(self.numbers)
        jumps = np.nonzero(np.diff(numbers) > 1)[0]
        return [(int(numbers[i]) + 1, int(numbers[i + 1]) - 1) for i in jumps]

    def of_type(self, kind: str) -> list[Interval]:
        return [iv for iv in self.intervals if iv.type == kind]

    def with_(self, **changes) -> Video:
        return replace(self, **changes)


@dataclass
class VideoTable:
    """The videos of a dataset plus what was skipped (rows, videos) or dropped and counted on the way.

    Offers what the protocols need of a table (`subjects`, `where_subjects`, indexing), so folds over
    videos are built by `splits.make_folds` as folds over clips are."""

    videos: list[Video]
    skipped: list[Skip] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.videos)

    def __iter__(self) -> Iterator[Video]:
        return iter(self.videos)

    def __getitem__(self, i: int) -> Video:
        return self.videos[i]

    @property
    def subjects(self) -> list[str]:
        return sorted({v.subject for v in self.videos} - {""})

    @property
    def labels(self) -> np.ndarray:  # subject k-fold stratifies by label: videos have none
        return np.zeros(len(self.videos), dtype=np.int64)

    def where_subjects(self, subjects: Iterable[str]) -> list[int]:
        wanted = set(subjects)
        return [i for i, v in enumerate(self.videos) if v.subject in wanted]

    def skip(self, what: str, reason: str) -> None:
        self.skipped.append(Skip(what, reason))

    def count(self, note: str, n: int = 1) -> None:
        self.notes[note] = self.notes.get(note, 0) + n

    def summary(self) -> dict:
        """What `inspect` shows of long videos: videos, frames, intervals per type, fps, what was left out.

        Keys: `n_videos`, `n_subjects`, `frames` (total, and min / median / max per video), `intervals`
        (type -> count), `interval_frames` (type -> min / median / max length), `emotions` (type ->
        emotion -> count), `subjects` (subject -> videos, frames, micro, macro), `fps` (dataset -> rates),
        `gaps` (videos with missing frame numbers, and frames missing), `notes`, `skipped`."""
        lengths = np.array([v.n_frames for v in self.videos]) if self.videos else np.zeros(1, int)
        per_type = {t: [iv for v in self.videos for iv in v.of_type(t)] for t in TYPES}
        subjects: dict[str, Counter] = defaultdict(Counter)
        rates: dict[str, set] = defaultdict(set)
        gaps = [g for v in self.videos for g in v.gaps()]
        for v in self.videos:
            subjects[v.subject].update(videos=1, frames=v.n_frames, **{t: len(v.of_type(t)) for t in TYPES})
            rates[v.origin].add(float(v.fps))

        def spread(values):
            return ({"min": int(min(values)), "median": float(np.median(values)), "max": int(max(values))}
                    if values else {"min": 0, "median": 0.0, "max": 0})

        return {
            "n_videos": len(self.videos),
            "n_subjects": len(self.subjects),
            "frames": {"total": int(sum(v.n_frames for v in self.videos)), **spread(list(lengths))},
            "intervals": {t: len(per_type[t]) for t in TYPES},
            "interval_frames": {t: spread([iv.length for iv in per_type[t]]) for t in TYPES},
            "emotions": {t: dict(Counter(iv.emotion or "(none)" for iv in per_type[t])) for t in TYPES},
            "subjects": {s: {k: int(subjects[s][k]) for k in ("videos", "frames", *TYPES)} for s in sorted(subjects)},
            "fps": {k: sorted(rates[k]) for k in sorted(rates)},
            "gaps": {"videos": sum(bool(v.gaps()) for v in self.videos),
                     "frames_missing": int(sum(b - a + 1 for a, b in gaps))},
            "notes": dict(self.notes),
            "skipped": [s.as_dict() for s in self.skipped],
        }


def check_video_ids(table: VideoTable) -> VideoTable:
    """After any long-video reader: skip videos whose names are not valid UTF-8 (named escaped, with the
    fix) and refuse two videos with one id, as `samples.check_sample_ids` does for clips."""
    kept = []
    for video in table.videos:
        if printable(video.id) != video.id or printable(str(video.folder)) != str(video.folder):
            table.skip(printable(video.id), f"name is not valid UTF-8: {printable(str(video.folder))}; rename it to "
                                            "UTF-8 (e.g. `convmv -f latin1 -t utf8 -r --notest <folder>`), then read again")
            continue
        kept.append(video)
    table.videos = kept
    for skip in table.skipped:
        skip.sample, skip.reason = printable(skip.sample), printable(skip.reason)
    twice = [vid for vid, n in Counter(v.id for v in kept).items() if n > 1]
    if twice:
        where = [str(v.folder) for v in kept if v.id == twice[0]]
        raise MERError(f"{len(twice)} video id(s) are read more than once, e.g. '{twice[0]}' (from {', '.join(where)}): "
                       "each video must be listed once; rename or remove the extra copies")
    return table


def iter_frames(video: Video, numbers: Sequence[int] | None = None, channels: int = 1
                ) -> Iterator[tuple[int, np.ndarray | None, str]]:
    """(frame number, image, problem) for `numbers` (default: every frame on disk), decoded one at a time.

    A number with no file (a gap) or a file that cannot be decoded (missing, truncated) yields
    `(number, None, why)`: the caller decides how to bridge it (a spotter holds the previous frame and
    reports the gap); the stream goes on.
    """
    index = {n: i for i, n in enumerate(video.numbers)} if numbers is not None else None
    wanted = video.numbers if numbers is None else numbers
    for k, number in enumerate(wanted):
        i = k if index is None else index.get(int(number))
        if i is None:
            yield int(number), None, f"frame {number} is not on disk"
            continue
        try:
            yield int(number), read_gray_or_color(video.path(i), channels), ""
        except BadFrame as err:
            yield int(number), None, str(err)


def interval_clips(videos: VideoTable | Sequence[Video], types: Sequence[str] = ("micro",),
                   intervals: dict[str, Sequence[Interval]] | None = None) -> SampleTable:
    """The intervals of `videos` as recognition clips: one `Sample` per interval of `types` (default: the
    labelled ones; `intervals`: video id -> other intervals, e.g. spotted ones), its frames the files from
    start to end. A clip whose frames are damaged is skipped, naming the file (gaps in the numbering are
    fine: frames are sampled by number). Sample id: `<dataset>/<subject>/<video>_<start>-<end>`."""
    # imported here: the readers import this module
    from mer_lightning.data.readers._folders import check_frame_files

    table = SampleTable([])
    for video in videos:
        chosen = intervals.get(video.id, ()) if intervals is not None else video.intervals
        for iv in chosen:
            if iv.type not in types:
                continue
            clip = f"{video.name}_{iv.start}-{iv.end}"
            span = video.span(iv.start, iv.end)
            problem = "no frames on disk in this interval" if not span else check_frame_files(span)
            if problem:
                table.skip(f"{video.dataset}/{video.subject}/{clip}", f"{iv.where or video.id}: {problem}")
                continue
            apex = iv.apex if iv.start <= iv.apex <= iv.end else (iv.start + iv.end) // 2
            table.samples.append(Sample(
                dataset=video.dataset, subject=video.subject, clip=clip, emotion=iv.emotion,
                frames=tuple(p for _, p in span), frame_numbers=tuple(n for n, _ in span),
                onset=iv.start, apex=apex, offset=iv.end, source=video.source, cropped=video.cropped,
                fps=float(video.fps)))
    return table
