"""MMEW's layout, as `docs/formats/more_datasets.md` gives it, quirks included:
`MMEW_Final/Micro_Expression/<emotion>/S01-03-001/1.jpg` (frames from 1) + `MMEW_Final/MMEW_Micro_Exp.xlsx`;
the sheet's `others` clips live in the folder `repression`. With `official=True` the subject-level
layout `S01/<emotion>/S01-03-001/`. Frame size UNVERIFIED.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames, write_xlsx
from mer_lightning.data.synthetic.layouts import register_layout

SHEET = "MMEW_Micro_Exp.xlsx"
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
           "remarks"]
FOLDERS = {"others": "repression"}


@register_layout("mmew", emotions=("happiness", "surprise", "disgust", "others"), frame_size=(320, 240))
def write_mmew_like(root: Path, spec: SyntheticSpec, official: bool = False) -> Path:
    """Write an MMEW-shaped tree under `root`; see the module doc."""
    root = Path(root)
    rows = []
    emotion_index = {e: i + 1 for i, e in enumerate(spec.emotion_names)}
    for clip in synth_clips(spec):
        clip = clip.placed(1)  # frames from 1.jpg
        subject = f"S{clip.subject:02d}"
        name = f"{subject}-{emotion_index[clip.emotion]:02d}-{clip.number:03d}"
        folder = FOLDERS.get(clip.emotion, clip.emotion)
        clip_dir = (root / subject / folder / name) if official else (root / "MMEW_Final" / "Micro_Expression" /
                                                                        folder / name)
        write_frames(clip_dir, clip, lambda n: f"{n}.jpg")
        onset = 1 + clip.number % 2  # some clips start a frame after the first file
        rows.append([subject, name, onset, clip.apex, clip.last, "+".join(f"AU{a}" for a in clip.aus),
                     clip.emotion, ""])
    write_xlsx(root / "MMEW_Final" / SHEET, [COLUMNS, *rows])
    return root
