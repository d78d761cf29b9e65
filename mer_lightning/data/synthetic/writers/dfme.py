"""DFME's layout, as `docs/formats/more_datasets.md` gives it, quirks included: part folders
`USTC_MEv4_partA_sub0001_sub0002/micro/<emotion>/<Filename>/<n>.jpg` for Parts A, B, C (500, 300,
200 fps: subjects split in three) + `data_coding/DFME_data_coding.xlsx` (Subject, Filename, OnsetFrame,
ApexFrame, OffsetFrame, Action Units, Emotion, fps) with the spellings `happy` / `sad` beside
`happiness` / `sadness` and one blank fps cell (the part folder says it); with `suggested=True` the
third-party layout `train_data/coding.xlsx` (no offset, no fps) + `train_data/<Filename>/00000.png`
(frames numbered from 0, the sheet's onset/apex absolute). Frame size UNVERIFIED.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames, write_xlsx
from mer_lightning.data.synthetic.layouts import register_layout

SHEET = "data_coding/DFME_data_coding.xlsx"
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Emotion", "fps"]
PARTS = (("A", 500), ("B", 300), ("C", 200))
SPELLED = {"happiness": "happy", "sadness": "sad"}


def dfme_part(subject: int, subjects: int) -> tuple[str, int]:
    """(part letter, fps) of a 1-based subject: the subjects split in three, in order."""
    third = max(1, -(-subjects // 3))
    return PARTS[min((subject - 1) // third, 2)]


@register_layout("dfme", emotions=("happiness", "sadness", "anger", "contempt", "fear", "disgust", "surprise"),
                 frame_size=(640, 480))
def write_dfme_like(root: Path, spec: SyntheticSpec, suggested: bool = False) -> Path:
    """Write a DFME-shaped tree under `root` (see the module doc) and return the root."""
    root = Path(root)
    third = max(1, -(-spec.subjects // 3))
    rows = []
    for clip in synth_clips(spec, first_frame=(1, 2000)):
        subject = f"sub{clip.subject:04d}"
        name = f"{subject}_{clip.number:02d}"
        emotion = clip.emotion.lower()
        spelled = SPELLED.get(emotion, emotion) if clip.number % 2 else emotion
        if suggested:
            write_frames(root / "train_data" / name, clip, lambda n: f"{n:05d}.png", first=0)
            rows.append([subject, name, clip.first, clip.apex, spelled])
            continue
        letter, fps = dfme_part(clip.subject, spec.subjects)
        k = "ABC".index(letter)
        first, last = k * third + 1, min((k + 1) * third, spec.subjects)
        part = root / f"USTC_MEv4_part{letter}_sub{first:04d}_sub{last:04d}"
        write_frames(part / "micro" / spelled / name, clip, lambda n: f"{n}.jpg")
        rows.append([subject, name, clip.first, clip.apex, clip.last, "+".join(clip.aus), spelled,
                     None if len(rows) == 0 else fps])
    if suggested:
        write_xlsx(root / "train_data" / "coding.xlsx", [["Subject", "Filename", "OnsetFrame", "ApexFrame", "Emotion"],
                                                         *rows])
    else:
        write_xlsx(root / SHEET, [COLUMNS, *rows])
    return root
