"""The Sample record and the SampleTable: one row per clip (or image) of a dataset.

Readers turn a dataset's own files into a SampleTable; everything downstream (labels, splits,
preprocessing, DataModules, reports) works on these records and never on raw layouts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mer_lightning.utils.errors import MERError


@dataclass(frozen=True)
class Stored:
    """A file holding a model input as it is (`data=precomputed`, `data.input=stored`).

    `shape` is its (T, C, H, W) as the file's header says (an image or a (C, H, W) array is T = 1);
    `scale` how its values map to [0, 1]: `auto` (8-bit images / 255, 16-bit / 65535, arrays as
    stored), a number (values divided by it) or `minmax` (each channel of the clip min-max scaled).
    """

    path: Path
    shape: tuple[int, int, int, int]
    scale: str | float = "auto"

    @property
    def steps(self) -> int:
        return self.shape[0]

    @property
    def channels(self) -> int:
        return self.shape[1]


@dataclass(frozen=True, eq=False)
class Sample:
    """One clip (or one still image, where `frames` has a single entry or `image` is set).

    `frames` are the clip's frame files in temporal order, `frame_numbers` their absolute
    numbers as written in the file names; `onset`, `apex` and `offset` are absolute frame
    numbers as annotated. `subject` is unique within the table (composite tables prefix it
    with the source dataset). `label` is the class index once a label scheme is applied.
    `cropped` says the frames are already face crops (CASME II `Cropped`, FER-2013), so
    `data.face=auto` does not look for a face in them; full frames (SAMM, raw CASME II) leave it false.
    `fps` is the recording's frame rate (0: unknown, or a still image); datasets differ (30 to 500 fps)
    and `data.frames=uniform` samples T frames by count, so a temporal model sees a different span
    of time per frame step on each dataset.
    `stored` (`data=precomputed`): a file that already holds the model's input (an image or a `.npy`
    array, served as it is with `data.input=stored`); clips of frames leave it None.
    """

    dataset: str
    subject: str
    clip: str
    emotion: str
    frames: tuple[Path, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    onset: int = 0
    apex: int = 0
    offset: int = 0
    label: int = -1
    source: str = ""
    split: str = ""
    cropped: bool = False
    fps: float = 0.0
    image: np.ndarray | None = field(default=None, repr=False)
    stored: Stored | None = None

    @property
    def id(self) -> str:
        """A stable identifier: `<dataset>/<subject>/<clip>`."""
        return f"{self.dataset}/{self.subject}/{self.clip}"

    @property
    def origin(self) -> str:
        """The dataset the clip came from (differs from `dataset` in composites)."""
        return self.source or self.dataset

    def with_(self, **changes) -> "Sample":
        return replace(self, **changes)


@dataclass
class Skip:
    """A sample left out, and why (reported in summaries, never silent)."""

    sample: str
    reason: str

    def as_dict(self) -> dict:
        return {"sample": self.sample, "reason": self.reason}


@dataclass
class SampleTable:
    """The samples of one dataset plus everything that was skipped or dropped on the way."""

    samples: list[Sample]
    classes: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def subjects(self) -> list[str]:
        """The subject ids (datasets without identities, like FER-2013, have none)."""
        return sorted({s.subject for s in self.samples} - {""})

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        """Samples per class name (every class listed, empty ones with 0)."""
        counts = Counter(s.label for s in self.samples)
        if self.classes:
            return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}
        return dict(Counter(s.emotion for s in self.samples))

    def where_subjects(self, subjects: Iterable[str]) -> list[int]:
        wanted = set(subjects)
        return [i for i, s in enumerate(self.samples) if s.subject in wanted]

    def skip(self, sample: str, reason: str) -> None:
        self.skipped.append(Skip(sample, reason))

    def count(self, note: str, n: int = 1) -> None:
        self.notes[note] = self.notes.get(note, 0) + n

    def summary(self) -> dict:
        """What `inspect` reports: counts per class and per subject, frames per clip, what was left out.

        Keys: `n_samples`, `n_subjects`, `class_counts` (name -> count), `skipped` (list of
        `{"sample", "reason"}`), `subjects` (subject -> class -> count), `frames_per_clip`
        (min / median / max), `notes` (counted quirks and drops), `parts` (official train / val / test
        parts, e.g. FER-2013's), `per_source` (composites), `fps` (source -> the distinct frame rates
        of its samples, e.g. `{"casme2": [200.0]}`; DFME's parts differ, still images have 0).
        """
        names = self.classes or sorted({s.emotion for s in self.samples})
        name_of = (lambda s: self.classes[s.label]) if self.classes else (lambda s: s.emotion)  # noqa: E731
        subjects: dict[str, Counter] = defaultdict(Counter)
        sources: dict[str, Counter] = defaultdict(Counter)
        parts: dict[str, Counter] = defaultdict(Counter)
        rates: dict[str, set] = defaultdict(set)
        for s in self.samples:
            rates[s.origin].add(float(s.fps))
            if s.subject:
                subjects[s.subject][name_of(s)] += 1
            if s.split:
                parts[s.split][name_of(s)] += 1
            sources[s.origin][name_of(s)] += 1
        lengths = np.array([max(len(s.frames), 1) for s in self.samples]) if self.samples else np.zeros(1)
        return {
            "n_samples": len(self.samples),
            "n_subjects": len(self.subjects),
            "class_counts": self.class_counts(),
            "skipped": [s.as_dict() for s in self.skipped],
            "subjects": {k: {n: subjects[k][n] for n in names} for k in sorted(subjects)},
            "parts": {k: {n: parts[k][n] for n in names} for k in ("train", "val", "test") if k in parts},
            "frames_per_clip": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                                "max": int(lengths.max())},
            "notes": dict(self.notes),
            "per_source": {k: {n: sources[k][n] for n in names} for k in sorted(sources)} if len(sources) > 1 else {},
            "fps": {k: sorted(rates[k]) for k in sorted(rates)},
        }


def printable(text: str) -> str:
    """`text` safe to log and write as UTF-8: bytes of a non-UTF-8 file name are shown as `\\xe9`."""
    try:
        raw = text.encode("utf-8", "surrogateescape")  # how Linux file names in another encoding come back
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def check_sample_ids(table: SampleTable) -> SampleTable:
    """After any reader: skip samples whose names are not valid UTF-8, and refuse two samples with one id.

    A folder named in another encoding (Latin-1 `s1_ne_\\xe9`) reaches Python as surrogate escapes:
    it reads fine but crashes only when results are written, after a fold has trained, so it is
    skipped here, with the name shown safely and the advice to rename it. Skip reasons that quote
    such names are made printable too (they are logged and written to JSON). Returns `table`.
    """
    kept = []
    for sample in table.samples:
        names = [sample.id, *map(str, sample.frames), *([str(sample.stored.path)] if sample.stored else [])]
        bad = next((name for name in names if printable(name) != name), None)
        if bad is None:
            kept.append(sample)
            continue
        if bad == sample.id and sample.frames:
            bad = str(sample.frames[0].parent)  # the clip folder on disk: what to rename
        elif bad == sample.id and sample.stored:
            bad = str(sample.stored.path)
        table.skip(printable(sample.id), f"name is not valid UTF-8: {printable(bad)}; rename it to UTF-8 "
                                         "(e.g. `convmv -f latin1 -t utf8 -r --notest <folder>`), then read again")
    table.samples = kept
    for skip in table.skipped:
        skip.sample, skip.reason = printable(skip.sample), printable(skip.reason)
    twice = [sample_id for sample_id, n in Counter(s.id for s in kept).items() if n > 1]
    if twice:
        where = [str(s.frames[0].parent) if s.frames else str(s.stored.path) if s.stored else s.clip
                 for s in kept if s.id == twice[0]]
        raise MERError(f"{len(twice)} sample id(s) are read more than once, e.g. '{twice[0]}' (from {', '.join(where)}): "
                       "each clip must be listed once; rename or remove the extra copies")
    return table
