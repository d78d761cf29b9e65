"""CAS(ME)^3's layout, as `docs/formats/more_datasets.md` gives it, quirks included:
`part_A/data/part_A_split/part_A/spNO.149/d/color/112.jpg` (long-video folders holding several MEs
each, absolute frame numbers, no padding) + `part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`
whose first sheet is empty and whose `label` sheet (Subject, Filename, Onset, Apex, Offset, AU,
Objective class, emotion) carries the label errors the reader's `CORRECTIONS` fix (apex before onset
for spNO.149 d, onset typo spNO.216 d, offset typo spNO.214 c, two offsets 0 for spNO.40 e, onset/apex
0 for spNO.216 e: the first five subjects are 149, 216, 214, 40, 14), upper-case `J` for spNO.14's
folder `j`, `Others` once. With `part_c=True` also `part_C/CAS(ME)3_part_C_ME.xlsx` (sheet
`mockCrimeME`: sub, count, onset, offset, au, emotion; no apex; a Chinese comma in one AU cell) +
`part_C/ME_C/01/1/color/*.jpg`. Frame size UNVERIFIED.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mer_lightning.data.synthetic.clips import SynthClip, SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames, write_xlsx
from mer_lightning.data.synthetic.layouts import register_layout

SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
SUBJECTS = (149, 216, 214, 40, 14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 39, 77, 138, 139,
            142, 143, 144, 145, 146, 147, 148, 150, 151, 152, 153, 154, 155, 156, 157)
FRAMES = "part_A/data/part_A_split/part_A"
C_SHEET = "CAS(ME)3_part_C_ME.xlsx"
C_COLUMNS = ["sub", "count", "onset", "offset", "au", "emotion"]
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")


def _quirks(subject: int, k: int, clip: SynthClip):
    """(clip placed, video letter, sheet onset, apex, offset) for the k-th clip of a subject whose
    sheet row carries a documented label error; None for an ordinary clip."""
    if (subject, k) == (149, 1):  # apex 83 before onset 112; the correct apex 123
        c = clip.placed(112, min_frames=14)
        return replace(c, apex=123), "d", 112, 83, c.last
    if (subject, k) == (216, 1):  # onset typo 3647 for 2647
        c = clip.placed(2647)
        return c, "d", 3647, c.apex, c.last
    if (subject, k) == (216, 2):  # onset and apex 0 for 1
        c = clip.placed(1)
        return replace(c, apex=1), "e", 0, 0, c.last
    if (subject, k) == (214, 1):  # offset typo 3460 for 34
        c = clip.placed(34 - len(clip.frames) + 1)
        return c, "c", c.first, c.apex, 3460
    if subject == 40 and k in (1, 2):  # offsets 0 for 1845, then 2403
        c = clip.placed((1845, 2403)[k - 1] - len(clip.frames) + 1)
        return c, "e", c.first, c.apex, 0
    return None


@register_layout("casme3", emotions=("happy", "disgust", "surprise", "others", "fear", "anger", "sad"),
                 frame_size=(640, 480))
def write_casme3_like(root: Path, spec: SyntheticSpec, part_c: bool = False) -> Path:
    """Write a CAS(ME)^3 part A-shaped tree (and part C with `part_c`) under `root`; see the module doc."""
    root = Path(root)
    if spec.subjects > len(SUBJECTS):
        raise ValueError(f"a CAS(ME)^3-like tree has at most {len(SUBJECTS)} subjects")
    rows, capitalised = [], False
    for clip in synth_clips(spec):
        subject = SUBJECTS[clip.subject - 1]
        quirk = _quirks(subject, clip.number, clip)
        if quirk:
            clip, letter, onset, apex, offset = quirk
            sheet_letter = letter
        else:  # two MEs per long video (a, a, b, b, ...), frames far from the quirks' ranges
            clip = clip.placed(4000 + 300 * clip.number + clip.suffix)
            letter = "abcdefghijklm"[(clip.number - 1) // 2 % 13]
            onset, apex, offset = clip.first, clip.apex, clip.last
            if (subject, clip.number) == (14, 1):  # the sheet's upper-case `J` for folder `j`
                letter = "j"
            sheet_letter = "J" if letter == "j" and subject == 14 else letter
        write_frames(root / FRAMES / f"spNO.{subject}" / letter / "color", clip, lambda n: f"{n}.jpg")
        emotion = clip.emotion
        if emotion == "others" and not capitalised:
            emotion, capitalised = "Others", True
        aus = "+".join(("R" if i == 0 and len(clip.aus) > 1 else "") + au for i, au in enumerate(clip.aus)) or "4"
        rows.append([f"spNO.{subject}", sheet_letter, onset, apex, offset, aus,
                     ROMAN[clip.number % len(ROMAN)], emotion])
    # rows in clip order: spNO.40 e's offset-0 row of 1845 comes before the one of 2403, as in meb
    write_xlsx(root / "part_A" / "annotation" / SHEET, sheets={"Sheet1": [], "label": [COLUMNS, *rows], "Sheet3": []})
    if part_c:
        write_casme3_part_c(root / "part_C", spec)
    return root


def write_casme3_part_c(root: Path, spec: SyntheticSpec) -> Path:
    """`ME_C/<sub:02d>/<count>/color/<n>.jpg` + `CAS(ME)3_part_C_ME.xlsx` (sheet `mockCrimeME`, no apex)."""
    part = replace(spec, subjects=min(spec.subjects, 2), clips_per_class=1, seed=spec.seed + 1,
                   emotions=("negative", "positive", "surprise", "others"))
    rows = []
    for clip in synth_clips(part, first_frame=(300, 900)):
        write_frames(Path(root) / "ME_C" / f"{clip.subject:02d}" / str(clip.number) / "color", clip,
                     lambda n: f"{n}.jpg")
        aus = ",".join(("R" if i == 0 else "") + au for i, au in enumerate(clip.aus)) or "4"
        if not rows:
            aus = aus.replace(",", "\uff0c") + ","  # a Chinese comma and a trailing comma, as row 16
        rows.append([clip.subject, clip.number, clip.first, clip.last, aus, clip.emotion])
    write_xlsx(Path(root) / C_SHEET, sheets={"mockCrimeME": [C_COLUMNS, *rows]})
    return Path(root)
