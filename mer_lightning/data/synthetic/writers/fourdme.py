"""4DME's layout, as `docs/formats/more_datasets.md` gives it, quirks included:
`4DMicro/gray_micro/S01/S01_1st_001_01_1/Frame_000000123.jpg` (grey-scale; or with `flat=True` the
pre-release `gray_micro_register_final/S01_1st_001_01_1/`) + `4DME_Labelling_Micro_release v1.xlsx`
(sub_ID, fold, fold_name, Onset, Apex, Offset, AUs, Emotion, then one-hot AU and emotion columns) with
float frame numbers, capitalised emotions, one multi-label row (`Surprise+Positive`), one row whose AUs
and Emotion cells are swapped and an AU suffixed `(k)`; beside it the extras file (`self-report emo'`,
`video emo'`), which must not be taken for the labels. Frame size UNVERIFIED.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames, write_xlsx
from mer_lightning.data.synthetic.layouts import register_layout

SHEET = "4DME_Labelling_Micro_release v1.xlsx"
EXTRAS = "4DME_Labelling_Micro_extras_release v1.xlsx"
COLUMNS = ["sub_ID", "fold", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion", "AU1", "AU2", "AU4",
           "AU12", "eye blink", "Positive", "Negative", "Surprise", "Repression", "Others", "Total"]


@register_layout("4dme", emotions=("Positive", "Negative", "Surprise", "Repression", "Others"), frame_size=(640, 480))
def write_4dme_like(root: Path, spec: SyntheticSpec, flat: bool = False) -> Path:
    """Write a 4DME-shaped tree under `root` (see the module doc) and return the root."""
    root = Path(root)
    rows, extras, multi, swapped = [], [], False, False
    for clip in synth_clips(spec, first_frame=(100, 3000)):
        subject = f"S{clip.subject:02d}"
        name = f"{subject}_1st_{clip.number:03d}_01_1"  # subject, video, ME, sub-ME
        folder = (root / "gray_micro_register_final" / name) if flat else (root / "4DMicro" / "gray_micro" / subject
                                                                           / name)
        write_frames(folder, clip, lambda n: f"Frame_{n:09d}.jpg", grey=True)
        emotion, aus = clip.emotion, "+".join(f"AU{a}" for a in clip.aus) or "AU7"
        if emotion == "Surprise" and not multi:
            emotion, multi = "Surprise+Positive", True
        if len(rows) == 1:
            aus += "+AU4(k)"  # a static AU
        onehot = [int(f"AU{a}" in aus) for a in ("1", "2", "4", "12")] + [0]
        onehot += [int(e in emotion) for e in ("Positive", "Negative", "Surprise", "Repression", "Others")]
        cells = [aus, emotion]
        if len(rows) == 3 and not swapped:  # meb rows 144/145: values from `AU` on swapped
            cells, swapped = [emotion, aus], True
        rows.append([subject, 1, name, float(clip.first), float(clip.apex), float(clip.last), *cells, *onehot,
                     sum(onehot)])
        extras.append([subject, 1, name, clip.emotion.lower(), clip.emotion.lower()])
    write_xlsx(root / SHEET, [COLUMNS, *rows])
    write_xlsx(root / EXTRAS, [["sub_ID", "fold", "fold_name", "self-report emo'", "video emo'"], *extras])
    return root
