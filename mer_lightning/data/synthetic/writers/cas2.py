"""CAS(ME)^2's long-video layout: `rawpic/s15/15_0101disgustingteeth/img001.jpg` (640x480 full frames,
30 fps; or the `cropped/.../img_1.jpg` face crops) + `CAS(ME)^2code_final.xlsx` with its three sheets
and no header row, quirks included: an offset 0 (the apex is the offset), an apex 0, a video code
stored as a number (101 for `0101`) and a folder name with a typo (`15_0503unnyfarting`).
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.files import write_xlsx
from mer_lightning.data.synthetic.layouts import register_video_layout
from mer_lightning.data.synthetic.videos import VideoSpec, synth_videos, write_video_frames

SHEET = "CAS(ME)^2code_final.xlsx"
# the 22 subject folders of the release (folder number = the `s` number)
FOLDERS = (15, 16, 19, 20, 21, 22, 23, 24, 25, 26, 27, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 40)
# (code, video, folder suffix): the stimuli; 0503's folder is misspelt in the release
VIDEOS = (("0101", "disgust1", "disgustingteeth"), ("0401", "anger1", "angryfight"),
          ("0503", "happy2", "unnyfarting"), ("0102", "disgust2", "pickingnose"), ("0502", "happy1", "funnycat"),
          ("0402", "anger2", "angrywoman"), ("0505", "happy3", "funnybaby"), ("0507", "happy4", "funnydog"))
SELF_REPORT = {"negative": "disgust", "positive": "happyiness", "surprise": "surprise", "others": "others"}


@register_video_layout("cas2", fps=30, emotions=("negative", "positive", "surprise", "others"), frame_size=(640, 480),
                       micro_frames=(7, 16), macro_frames=(20, 50))
def write_cas2_like(root: Path, spec: VideoSpec) -> Path:
    """Write a CAS(ME)^2-shaped tree: `rawpic/sNN/NN_<code><name>/img001.jpg` (or, when `spec.cropped`,
    `cropped/sNN/NN_<code><name>/img_1.jpg`, the face box) and the code file, whose `CASFEcode_final`
    sheet lists subject id, `<video>_<n>`, onset, apex, offset, AUs, emotion, type and self-report. The
    first macro row's offset is written 0 (its apex cell holds the offset, so reading the offset as the
    apex gives the true interval), the first micro row's apex 0; `naming rule2` stores the first code as
    a number."""
    root = Path(root)
    if spec.subjects > len(FOLDERS) or spec.videos_per_subject > len(VIDEOS):
        raise ValueError(f"a CAS(ME)^2-like tree has at most {len(FOLDERS)} subjects and {len(VIDEOS)} videos each")
    folder, name = ("cropped", lambda n: f"img_{n}.jpg") if spec.cropped else ("rawpic", lambda n: f"img{n:03d}.jpg")
    rows, offset_zero, apex_zero = [], False, False
    used = set()
    for video in synth_videos(spec):
        number = FOLDERS[video.subject - 1]
        code, key, suffix = VIDEOS[(video.subject + video.number - 2) % len(VIDEOS)]
        used.add((code, key))
        write_video_frames(root / folder / f"s{number}" / f"{number}_{code}{suffix}", video, name, crop=spec.cropped)
        for k, event in enumerate(video.events, start=1):
            apex, offset = event.apex, event.last
            if event.type == "macro" and not offset_zero:
                apex, offset, offset_zero = event.last, 0, True
            elif event.type == "micro" and not apex_zero:
                apex, apex_zero = 0, True
            rows.append([video.subject, f"{key}_{k}", event.first, apex, offset, "+".join(event.aus), event.emotion,
                         f"{event.type}-expression", SELF_REPORT.get(event.emotion, event.emotion)])
    rule1 = [[number, f"s{number}", subject] for subject, number in enumerate(FOLDERS[:spec.subjects], start=1)]
    rule2 = [[int(code) if i == 0 else code, key] for i, (code, key) in enumerate(sorted(used))]
    write_xlsx(root / SHEET, sheets={"CASFEcode_final": rows, "naming rule1": rule1, "naming rule2": rule2})
    return root
