"""SAMM's layout: `SAMM/006/006_1_2/006_05562.jpg` (grey frames: SAMM's camera is monochrome; its
2040x1088 shots at half size, the same face-to-frame proportion with a quarter of the pixels to write
and decode) + `SAMM_Micro_FACS_Codes_v2.xlsx` whose header is on row 14 below free text, integer
subjects with gaps, `Other` and once `others`.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames, write_xlsx
from mer_lightning.data.synthetic.layouts import register_layout

SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
           "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
SUBJECTS = (6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 30, 31, 32, 33,
            34, 35, 36, 37)  # 29 subjects, 006-037 with gaps, as in SAMM


@register_layout("samm", emotions=("Anger", "Contempt", "Happiness", "Surprise", "Other"), frame_size=(1020, 544),
                 grayscale=True)
def write_samm_like(root: Path, spec: SyntheticSpec) -> Path:
    """Write a SAMM-shaped tree: `SAMM/006/006_1_2/006_05562.jpg` and `SAMM_Micro_FACS_Codes_v2.xlsx`.

    The sheet has 13 rows of free text above its header (Excel row 14), integer subjects (6 for
    folder `006`, with SAMM's gaps in the numbering), capitalised emotions and, once, `others` for
    `Other`.
    """
    root = Path(root)
    if spec.subjects > len(SUBJECTS):
        raise ValueError(f"a SAMM-like tree has at most {len(SUBJECTS)} subjects")
    rows, spelled_others = [], False
    for clip in synth_clips(spec, first_frame=(1000, 6000)):
        subject = SUBJECTS[clip.subject - 1]
        name = f"{subject:03d}_{clip.suffix}_{clip.number}"
        write_frames(root / "SAMM" / f"{subject:03d}" / name, clip, lambda n, s=subject: f"{s:03d}_{n:05d}.jpg")
        emotion = clip.emotion
        if emotion == "Other" and not spelled_others:
            emotion, spelled_others = "others", True
        rows.append([subject, name, f"{clip.suffix}_{clip.number}", clip.first, clip.apex, clip.last,
                     clip.last - clip.first + 1, "Micro - 1/2", "+".join(clip.aus), emotion,
                     "", ""])
    preamble = [["SAMM: Spontaneous Actions and Micro-Movements (synthetic copy written by mer_lightning)"],
                ["Facial Action Coding System codes, micro-movements"], *[[""]] * 10,
                ["Frame numbers are absolute; see the notes column."]]
    write_xlsx(root / SHEET, [*preamble, COLUMNS, *rows])
    return root
