"""CAS(ME)^3 part A's long videos: `part_A/data/part_A_split/part_A/spNO.1/a/color/1.jpg` (30 fps, frame
numbers from 1, no padding, with gaps: a few dropped frames per video) + `part_A/annotation/
CAS(ME)3_part_A_v2.xlsx` (sheet `AU+Emotion`: every macro- and micro-expression, no emotion column;
sheet `eye blink`) + the micro-expression sheet `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (sheet
`label`) that gives micro rows their emotions. Quirks included: a Filename written upper case (`A` for
folder `a`), `Others` capitalised once, gaps in the frame numbers.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.files import write_xlsx
from mer_lightning.data.synthetic.layouts import register_video_layout
from mer_lightning.data.synthetic.videos import VideoSpec, synth_videos, write_video_frames

FRAMES = Path("part_A/data/part_A_split/part_A")
SHEET = "CAS(ME)3_part_A_v2.xlsx"
ME_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
SUBJECTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type", "Objective class"]
ME_COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]


@register_video_layout("casme3_lv", fps=30, emotions=("happy", "disgust", "surprise", "others", "fear", "anger", "sad"),
                       frame_size=(640, 480), micro_frames=(7, 16), macro_frames=(20, 50))
def write_casme3_lv_like(root: Path, spec: VideoSpec) -> Path:
    """Write CAS(ME)^3 part A's long videos: frames `spNO.<n>/<letter>/color/<frame>.jpg` (two frames of each
    video left out, each two frames before one of its first two intervals: gaps, never inside an interval), the `AU+Emotion` / `eye blink` workbook and the ME
    label sheet (`spec.cropped`: frames cropped to the face box)."""
    root = Path(root)
    if spec.subjects > len(SUBJECTS) or spec.videos_per_subject > 13:
        raise ValueError(f"a CAS(ME)^3-like tree has at most {len(SUBJECTS)} subjects and 13 videos each")
    rows, blinks, me_rows = [], [], []
    spelled_upper = spelled_others = False
    for video in synth_videos(spec):
        subject = f"spNO.{SUBJECTS[video.subject - 1]}"
        letter = "abcdefghijklm"[video.number - 1]
        inside = {n for e in video.events for n in range(e.first, e.last + 1)}
        gaps = [e.first - 2 for e in video.events[:2] if e.first - 2 > 1 and e.first - 2 not in inside]
        write_video_frames(root / FRAMES / subject / letter / "color", video, lambda n: f"{n}.jpg", crop=spec.cropped,
                           skip=gaps)
        filename = letter
        if not spelled_upper:
            filename, spelled_upper = letter.upper(), True
        for event in video.events:
            rows.append([subject, filename, event.first, event.apex, event.last, "+".join(event.aus),
                         f"{event.type.capitalize()}-expression", "I"])
            if event.type == "micro":
                emotion = event.emotion
                if emotion == "others" and not spelled_others:
                    emotion, spelled_others = "Others", True
                me_rows.append([subject, filename, event.first, event.apex, event.last, "+".join(event.aus), "I",
                                emotion])
        blinks += [[subject, filename, first, last] for first, last in video.blinks]
    write_xlsx(root / "part_A/annotation" / SHEET, sheets={"AU+Emotion": [COLUMNS, *rows],
                                                           "eye blink": [["Subject", "Filename", "Onset", "Offset"],
                                                                         *blinks]})
    write_xlsx(root / "part_A/annotation" / ME_SHEET, sheets={"label": [ME_COLUMNS, *me_rows], "Sheet1": []})
    return root
