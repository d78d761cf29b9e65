"""Synthetic writers for CAS(ME)^3, CASME and MMEW, in their layouts as `docs/formats/more_datasets.md`
gives them, quirks included (registered in `synthetic.WRITERS`; the clips come from `synthetic.synth_clips`).

- `write_casme3_like`: `part_A/data/part_A_split/part_A/spNO.149/d/color/112.jpg` (long-video folders
  holding several MEs each, absolute frame numbers, no padding) + `part_A/annotation/
  cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` whose first sheet is empty and whose `label` sheet
  (Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion) carries the label errors the
  reader's `CORRECTIONS` fix (apex before onset for spNO.149 d, onset typo spNO.216 d, offset typo
  spNO.214 c, two offsets 0 for spNO.40 e, onset/apex 0 for spNO.216 e: the first five subjects are
  149, 216, 214, 40, 14), upper-case `J` for spNO.14's folder `j`, `Others` once. With `part_c=True`
  also `part_C/CAS(ME)3_part_C_ME.xlsx` (sheet `mockCrimeME`: sub, count, onset, offset, au, emotion;
  no apex; a Chinese comma in one AU cell) + `part_C/ME_C/01/1/color/*.jpg`.
- `write_casme_like`: `CASME_raw_selected/sub01/EP01_5/EP01_5-45.jpg` (frame numbers zero-padded to three
  digits in the second half of the rows only) + `casme.xlsx` (Subject, Filename, blank, OnsetF, ApexF1,
  ApexF2, OffsetF, blank, AU, Emotion) with one row whose ApexF1 is blank (ApexF2 given) and one with
  neither. With `meb_version=True` the sheet has meb's 189 rows (identical copies of rows fill it) and
  rows 40, 42, 43, 54, 140 carry the frame errors the reader's table fixes.
- `write_mmew_like`: `MMEW_Final/Micro_Expression/<emotion>/S01-03-001/1.jpg` (frames from 1) +
  `MMEW_Final/MMEW_Micro_Exp.xlsx`; the sheet's `others` clips live in the folder `repression`. With
  `official=True` the subject-level layout `S01/<emotion>/S01-03-001/`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

EMOTIONS = {"casme3": ("happy", "disgust", "surprise", "others", "fear", "anger", "sad"),
            "casme": ("disgust", "repression", "surprise", "tense"),
            "mmew": ("happiness", "surprise", "disgust", "others")}
FRAME_SIZES = {"casme3": (640, 480), "casme": (640, 480), "mmew": (320, 240)}  # resolutions UNVERIFIED
CASME3_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
CASME3_SUBJECTS = (149, 216, 214, 40, 14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 39, 77, 138, 139,
                   142, 143, 144, 145, 146, 147, 148, 150, 151, 152, 153, 154, 155, 156, 157)
CASME3_FRAMES = "part_A/data/part_A_split/part_A"
CASME3_C_SHEET = "CAS(ME)3_part_C_ME.xlsx"
CASME3_C_COLUMNS = ["sub", "count", "onset", "offset", "au", "emotion"]
CASME_SHEET = "casme.xlsx"
CASME_COLUMNS = ["Subject", "Filename", "", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "", "AU", "Emotion"]
MMEW_SHEET = "MMEW_Micro_Exp.xlsx"
MMEW_COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
                "remarks"]
MMEW_FOLDERS = {"others": "repression"}
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")


def _placed(clip, first: int, min_frames: int = 0):
    """`clip` moved to start at frame `first`, its last frame repeated up to `min_frames` frames."""
    frames = clip.frames + [clip.frames[-1]] * max(0, min_frames - len(clip.frames))
    return replace(clip, first=first, apex=first + (clip.apex - clip.first), frames=frames)


def _casme3_quirks(subject: int, k: int, clip):
    """(clip placed, video letter, sheet onset, apex, offset) for the k-th clip of a subject whose
    sheet row carries a documented label error; None for an ordinary clip."""
    if (subject, k) == (149, 1):  # apex 83 before onset 112; the correct apex 123
        c = _placed(clip, 112, min_frames=14)
        return replace(c, apex=123), "d", 112, 83, c.last
    if (subject, k) == (216, 1):  # onset typo 3647 for 2647
        c = _placed(clip, 2647)
        return c, "d", 3647, c.apex, c.last
    if (subject, k) == (216, 2):  # onset and apex 0 for 1
        c = _placed(clip, 1)
        return replace(c, apex=1), "e", 0, 0, c.last
    if (subject, k) == (214, 1):  # offset typo 3460 for 34
        c = _placed(clip, 34 - len(clip.frames) + 1)
        return c, "c", c.first, c.apex, 3460
    if subject == 40 and k in (1, 2):  # offsets 0 for 1845, then 2403
        c = _placed(clip, (1845, 2403)[k - 1] - len(clip.frames) + 1)
        return c, "e", c.first, c.apex, 0
    return None


def write_casme3_like(root: Path, spec, part_c: bool = False) -> Path:
    """Write a CAS(ME)^3 part A-shaped tree (and part C with `part_c`) under `root`; see the module doc."""
    import pandas as pd

    from mer_lightning.data.synthetic import _write_frames, synth_clips

    root = Path(root)
    if spec.subjects > len(CASME3_SUBJECTS):
        raise ValueError(f"a CAS(ME)^3-like tree has at most {len(CASME3_SUBJECTS)} subjects")
    rows, capitalised = [], False
    for clip in synth_clips(spec):
        subject = CASME3_SUBJECTS[clip.subject - 1]
        quirk = _casme3_quirks(subject, clip.number, clip)
        if quirk:
            clip, letter, onset, apex, offset = quirk
            sheet_letter = letter
        else:  # two MEs per long video (a, a, b, b, ...), frames far from the quirks' ranges
            clip = _placed(clip, 4000 + 300 * clip.number + clip.suffix)
            letter = "abcdefghijklm"[(clip.number - 1) // 2 % 13]
            onset, apex, offset = clip.first, clip.apex, clip.last
            if (subject, clip.number) == (14, 1):  # the sheet's upper-case `J` for folder `j`
                letter = "j"
            sheet_letter = "J" if letter == "j" and subject == 14 else letter
        _write_frames(root / CASME3_FRAMES / f"spNO.{subject}" / letter / "color", clip, lambda n: f"{n}.jpg")
        emotion = clip.emotion
        if emotion == "others" and not capitalised:
            emotion, capitalised = "Others", True
        aus = "+".join(("R" if i == 0 and len(clip.aus) > 1 else "") + au for i, au in enumerate(clip.aus)) or "4"
        rows.append([f"spNO.{subject}", sheet_letter, onset, apex, offset, aus,
                     ROMAN[clip.number % len(ROMAN)], emotion])
    # rows in clip order: spNO.40 e's offset-0 row of 1845 comes before the one of 2403, as in meb
    path = root / "part_A" / "annotation" / CASME3_SHEET
    path.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame([]).to_excel(writer, sheet_name="Sheet1", header=False, index=False)
        pd.DataFrame([CASME3_COLUMNS, *rows]).to_excel(writer, sheet_name="label", header=False, index=False)
        pd.DataFrame([]).to_excel(writer, sheet_name="Sheet3", header=False, index=False)
    if part_c:
        write_casme3_part_c(root / "part_C", spec)
    return root


def write_casme3_part_c(root: Path, spec) -> Path:
    """`ME_C/<sub:02d>/<count>/color/<n>.jpg` + `CAS(ME)3_part_C_ME.xlsx` (sheet `mockCrimeME`, no apex)."""
    import pandas as pd

    from mer_lightning.data.synthetic import _write_frames, synth_clips

    part = replace(spec, subjects=min(spec.subjects, 2), clips_per_class=1, seed=spec.seed + 1,
                   emotions=("negative", "positive", "surprise", "others"))
    rows = []
    for clip in synth_clips(part, first_frame=(300, 900)):
        _write_frames(Path(root) / "ME_C" / f"{clip.subject:02d}" / str(clip.number) / "color", clip,
                      lambda n: f"{n}.jpg")
        aus = ",".join(("R" if i == 0 else "") + au for i, au in enumerate(clip.aus)) or "4"
        if not rows:
            aus = aus.replace(",", "\uff0c") + ","  # a Chinese comma and a trailing comma, as row 16
        rows.append([clip.subject, clip.number, clip.first, clip.last, aus, clip.emotion])
    Path(root).mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(Path(root) / CASME3_C_SHEET) as writer:
        pd.DataFrame([CASME3_C_COLUMNS, *rows]).to_excel(writer, sheet_name="mockCrimeME", header=False, index=False)
    return Path(root)


# meb's 189-row casme.xlsx: the rows whose frames the reader corrects -> (first, n frames, apex) on disk
MEB_ROW_CLIPS = {40: (100, 50, 120), 42: (101, 19, 110), 43: (57, 18, 65), 54: (31, 10, None),
                 140: (133, 10, None)}


def write_casme_like(root: Path, spec, meb_version: bool = False) -> Path:
    """Write a CASME-shaped tree under `root`; see the module doc. `meb_version` needs at least 6 clips."""
    from mer_lightning.data.synthetic import _write_frames, _write_xlsx, synth_clips

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
            clip = _placed(replace(clip, frames=clip.frames[:n]), first, min_frames=n)
            clip = replace(clip, apex=apex or (clip.first + clip.last) // 2)
            onset, apex1, offset = clip.first, clip.apex, clip.last + 40  # offset beyond the files
            if fixed_rows[i] in (40, 42, 43):
                onset, apex1 = clip.first + 30, clip.first  # onset too late, apex before it
        elif k == 0:
            apex1, apex2 = None, clip.apex  # ApexF1 blank: the reader takes ApexF2
        elif k == 1:
            apex1 = None  # neither: the middle frame
        pad = i >= len(clips) // 2  # the old loader: frame numbers zero-padded to 3 digits in later rows
        _write_frames(root / "CASME_raw_selected" / f"sub{clip.subject:02d}" / name, clip,
                      lambda n, name=name, pad=pad: f"{name}-{n:03d}.jpg" if pad else f"{name}-{n}.jpg")
        row = [clip.subject, name, None, onset, apex1, apex2, offset, None, "+".join(clip.aus), clip.emotion]
        if i < len(fixed_rows):
            fixed[fixed_rows[i]] = row
        else:
            ordinary.append(row)
    # meb's version: 189 rows, the corrected ones at their rows, the others filled with identical copies
    # of the ordinary rows (read once each, counted as duplicate_rows_merged)
    rows = [fixed.get(r) or ordinary[r % len(ordinary)] for r in range(189)] if meb_version else ordinary
    _write_xlsx(root / CASME_SHEET, [CASME_COLUMNS, *rows])
    return root


def write_mmew_like(root: Path, spec, official: bool = False) -> Path:
    """Write an MMEW-shaped tree under `root`; see the module doc."""
    from mer_lightning.data.synthetic import _write_frames, _write_xlsx, synth_clips

    root = Path(root)
    rows = []
    emotion_index = {e: i + 1 for i, e in enumerate(spec.emotion_names)}
    for clip in synth_clips(spec):
        clip = _placed(clip, 1)  # frames from 1.jpg
        subject = f"S{clip.subject:02d}"
        name = f"{subject}-{emotion_index[clip.emotion]:02d}-{clip.number:03d}"
        folder = MMEW_FOLDERS.get(clip.emotion, clip.emotion)
        clip_dir = (root / subject / folder / name) if official else (root / "MMEW_Final" / "Micro_Expression" /
                                                                        folder / name)
        _write_frames(clip_dir, clip, lambda n: f"{n}.jpg")
        onset = 1 + clip.number % 2  # some clips start a frame after the first file
        rows.append([subject, name, onset, clip.apex, clip.last, "+".join(f"AU{a}" for a in clip.aus),
                     clip.emotion, ""])
    (root / "MMEW_Final").mkdir(parents=True, exist_ok=True)
    _write_xlsx(root / "MMEW_Final" / MMEW_SHEET, [MMEW_COLUMNS, *rows])
    return root
