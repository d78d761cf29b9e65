"""CASME's layout (the first version), as `docs/formats/more_datasets.md` gives it, quirks included:
`CASME_raw_selected/sub01/EP01_5/EP01_5-45.jpg` (frame numbers zero-padded to three digits in the
second half of the rows only) + `casme.xlsx` (Subject, Filename, blank, OnsetF, ApexF1, ApexF2,
OffsetF, blank, AU, Emotion) with one row whose ApexF1 is blank (ApexF2 given) and one with neither.
With `meb_version=True` the sheet has meb's 189 rows (identical copies of rows fill it) and rows 40,
42, 43, 54, 140 carry the frame errors the reader's table fixes. Frame size UNVERIFIED.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames, write_xlsx
from mer_lightning.data.synthetic.layouts import register_layout

SHEET = "casme.xlsx"
COLUMNS = ["Subject", "Filename", "", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "", "AU", "Emotion"]
# meb's 189-row casme.xlsx: the rows whose frames the reader corrects -> (first, n frames, apex) on disk
MEB_ROW_CLIPS = {40: (100, 50, 120), 42: (101, 19, 110), 43: (57, 18, 65), 54: (31, 10, None),
                 140: (133, 10, None)}


@register_layout("casme", emotions=("disgust", "repression", "surprise", "tense"), frame_size=(640, 480))
def write_casme_like(root: Path, spec: SyntheticSpec, meb_version: bool = False) -> Path:
    """Write a CASME-shaped tree under `root`; see the module doc. `meb_version` needs at least 6 clips."""
    root = Path(root)
    clips = list(synth_clips(spec))
    fixed, ordinary = {}, []
    fixed_rows = list(MEB_ROW_CLIPS) if meb_version else []
    if meb_version and len(clips) < len(fixed_rows) + 1:
        raise ValueError("meb_version needs at least 6 clips")
    for i, clip in enumerate(clips):
        k = i - len(fixed_rows)  # the position among the ordinary clips
        name = f"EP{clip.number:02d}_{clip.suffix}"
        onset, apex1, apex2, offset = clip.first, clip.apex, None, clip.last
        if i < len(fixed_rows):  # a row the reader's table corrects: files where meb says, sheet wrong
            first, n, apex = MEB_ROW_CLIPS[fixed_rows[i]]
            clip = replace(clip, frames=clip.frames[:n]).placed(first, min_frames=n)
            clip = replace(clip, apex=apex or (clip.first + clip.last) // 2)
            onset, apex1, offset = clip.first, clip.apex, clip.last + 40  # offset beyond the files
            if fixed_rows[i] in (40, 42, 43):
                onset, apex1 = clip.first + 30, clip.first  # onset too late, apex before it
        elif k == 0:
            apex1, apex2 = None, clip.apex  # ApexF1 blank: the reader takes ApexF2
        elif k == 1:
            apex1 = None  # neither: the middle frame
        pad = i >= len(clips) // 2  # the old loader: frame numbers zero-padded to 3 digits in later rows
        write_frames(root / "CASME_raw_selected" / f"sub{clip.subject:02d}" / name, clip,
                     lambda n, name=name, pad=pad: f"{name}-{n:03d}.jpg" if pad else f"{name}-{n}.jpg")
        row = [clip.subject, name, None, onset, apex1, apex2, offset, None, "+".join(clip.aus), clip.emotion]
        if i < len(fixed_rows):
            fixed[fixed_rows[i]] = row
        else:
            ordinary.append(row)
    # meb's version: 189 rows, the corrected ones at their rows, the others filled with identical copies
    # of the ordinary rows (read once each, counted as duplicate_rows_merged)
    rows = [fixed.get(r) or ordinary[r % len(ordinary)] for r in range(189)] if meb_version else ordinary
    write_xlsx(root / SHEET, [COLUMNS, *rows])
    return root
