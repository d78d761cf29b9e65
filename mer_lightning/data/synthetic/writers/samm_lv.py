"""SAMM Long Videos' layout: `SAMM_longvideos/006_1/006_1_0001.jpg` (grey frames, 200 fps; SAMM's 2040x1088
at half size, as the clip writer) + `SAMM_LongVideos_V3_Release.xlsx` (sheet `FACS_Movement_Only`, 9
note rows above the header) + the micro-expression sheet `SAMM_Micro_FACS_Codes_v2.xlsx` that gives the
micro rows their emotions. Quirks included: a fractional onset, an apex of -1, and an extra macro row
with onset 0 (no expression drawn for it: most papers drop such rows, the reader does by default).
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.files import write_xlsx
from mer_lightning.data.synthetic.layouts import register_video_layout
from mer_lightning.data.synthetic.videos import VideoSpec, synth_videos, write_video_frames
from mer_lightning.data.synthetic.writers.samm import COLUMNS as MICRO_COLUMNS
from mer_lightning.data.synthetic.writers.samm import SUBJECTS

SHEET = "SAMM_LongVideos_V3_Release.xlsx"
MICRO_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units",
           "Notes"]
NOTES = [["SAMM Long Videos: facial movements (synthetic copy written by mer_lightning)"],
         ["Frame numbers are the numbers in the frame file names."], ["Apex -1: the apex was not annotated."],
         ["Type: Macro, or Micro - 1/2 (micro-movements)."], [""], [""], [""], [""], ["FACS_Movement_Only"]]


@register_video_layout("samm_lv", fps=200, emotions=("Anger", "Contempt", "Happiness", "Surprise", "Other"),
                       frame_size=(1020, 544), micro_frames=(40, 100), macro_frames=(120, 400), grayscale=True)
def write_samm_lv_like(root: Path, spec: VideoSpec) -> Path:
    """Write a SAMM-LV-shaped tree: `SAMM_longvideos/<sss>_<v>/<sss>_<v>_<nnnn>.jpg` (4-digit index, 5 past
    9999), the long-video sheet and the micro-expression sheet (`when spec.cropped`: frames cropped to
    the face box)."""
    root = Path(root)
    if spec.subjects > len(SUBJECTS):
        raise ValueError(f"a SAMM-LV-like tree has at most {len(SUBJECTS)} subjects")
    rows, micro_rows = [], []
    fractional = apex_unknown = onset_zero = False
    for video in synth_videos(spec):
        subject = SUBJECTS[video.subject - 1]
        key = f"{subject:03d}_{video.number}"
        write_video_frames(root / "SAMM_longvideos" / key, video, lambda n, k=key: f"{k}_{n:04d}.jpg",
                           crop=spec.cropped)
        if not onset_zero:  # the release's onset-0 macro rows (long, not drawn here)
            rows.append([subject, f"{key}_0", video.number, 0, -1, min(video.n_frames, 600), None, "Macro", "",
                         "onset 0"])
            onset_zero = True
        for k, event in enumerate(video.events, start=1):
            onset, apex = event.first, event.apex
            if event.type == "macro" and not fractional:
                onset, fractional = event.first + 0.4, True  # rounds half up to the true onset
            elif event.type == "micro" and not apex_unknown:
                apex, apex_unknown = -1, True
            filename = f"{key}_{k}"
            rows.append([subject, filename, video.number, onset, apex, event.last, event.length,
                         "Micro - 1/2" if event.type == "micro" else "Macro", "+".join(event.aus), ""])
            if event.type == "micro":
                micro_rows.append([subject, filename, video.number, event.first, event.apex, event.last,
                                   event.length, "Micro - 1/2", "+".join(event.aus), event.emotion, "", ""])
    write_xlsx(root / SHEET, sheets={"FACS_Movement_Only": [*NOTES, COLUMNS, *rows]})
    preamble = [["SAMM: micro-movements (synthetic copy written by mer_lightning)"], *[[""]] * 12]
    write_xlsx(root / MICRO_SHEET, [*preamble, MICRO_COLUMNS, *micro_rows])
    return root
