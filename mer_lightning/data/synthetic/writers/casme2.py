"""CASME II's layout: `CASME2_RAW_selected/sub01/EP01_01/img46.jpg` (640x480 full frames; or the
`Cropped/.../reg_img46.jpg` face crops) + `CASME2-coding-20140508.xlsx` with integer subjects, two
blank-headed columns and a '/' apex cell. The embedded default (`data=synthetic`) is the raw tree,
read through the same reader as `data=casme2`.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames, write_xlsx
from mer_lightning.data.synthetic.layouts import register_layout

SHEET = "CASME2-coding-20140508.xlsx"
# as in some real copies: two extra columns with blank headers (pandas reads `Unnamed: 2`, `Unnamed: 6`)
COLUMNS = ["Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units",
           "Estimated Emotion"]


@register_layout("casme2", emotions=("happiness", "disgust", "repression", "surprise", "others"),
                 frame_size=(640, 480))
def write_casme2_like(root: Path, spec: SyntheticSpec, cropped: bool | None = None) -> Path:
    """Write a CASME II-shaped tree under `root` and return the root.

    Layout: `CASME2_RAW_selected/subNN/EPxx_yy/img<N>.jpg` (full 640x480 RGB frames) or, when
    `cropped` (default: `spec.cropped`), `Cropped/subNN/EPxx_yy/reg_img<N>.jpg` (the face box),
    with absolute frame numbers that do not start at 1, and the coding sheet
    `CASME2-coding-20140508.xlsx` whose `Subject` column holds integers, with two blank-headed
    columns, and whose second row's apex is '/' (as sub04 EP12_01f in the real sheet).
    """
    root = Path(root)
    cropped = spec.cropped if cropped is None else cropped
    folder, prefix = ("Cropped", "reg_img") if cropped else ("CASME2_RAW_selected", "img")
    rows = []
    for clip in synth_clips(spec):
        name = f"EP{clip.number:02d}_{clip.suffix:02d}"
        write_frames(root / folder / f"sub{clip.subject:02d}" / name, clip, lambda n: f"{prefix}{n}.jpg", crop=cropped)
        apex = "/" if len(rows) == 1 else clip.apex
        rows.append([clip.subject, name, None, clip.first, apex, clip.last, None,
                     "+".join(clip.aus), clip.emotion.lower()])
    write_xlsx(root / SHEET, [COLUMNS, *rows])
    return root
