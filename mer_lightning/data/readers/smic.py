"""SMIC-HS: `HS/s1/micro/negative/s1_ne_01/image046811.bmp` (100 fps, 16 subjects, no sheet).

Quirks handled here: there is no annotation file: the class is the folder name (negative,
positive, surprise) and each clip folder spans onset to offset; SMIC has no apex annotation, so
the middle frame stands in (counted as `apex_missing`, as for CASME II's '/' cells). The root may be
the folder holding `HS/` or `HS/` itself. Only the `micro` clips are read (SMIC-HS also has
`non_micro` clips, which are not micro-expressions). Folder names that are not valid UTF-8 (copies
unpacked with another encoding) are skipped by `samples.check_sample_ids`, run after every reader.
"""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.readers._folders import numbered_frames, require_root
from mer_lightning.data.readers._rows import add_clip
from mer_lightning.data.registry import register_dataset
from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

EMOTIONS = ("negative", "positive", "surprise")
REQUEST_FROM = "https://www.oulu.fi/cmvs/node/41319 (SMIC licence agreement)"
FPS = 100.0  # SMIC-HS


def find_subjects_dir(root: Path) -> Path:
    for folder in (root / "HS", root):
        if folder.is_dir() and any((p / "micro").is_dir() for p in folder.iterdir() if p.is_dir()):
            return folder
    raise MERError(f"no SMIC-HS clips in {root}: expected folders like {root / 'HS' / 's1' / 'micro' / 'negative'}")


# SMIC-HS's three classes are MEGC 2019's (negative, positive, surprise): `megc_3` is its scheme
@register_dataset("smic", title="SMIC-HS", folder="SMIC", fps=(FPS,), classes="megc_3", protocol="loso",
                  request_from=REQUEST_FROM)
def read_smic(root) -> SampleTable:
    """Read SMIC-HS into a SampleTable (emotion = class folder, apex = middle frame)."""
    root = require_root(root, "smic")
    subjects_dir = find_subjects_dir(root)
    table = SampleTable([])
    for subject_dir in sorted((p for p in subjects_dir.iterdir() if (p / "micro").is_dir()), key=_natural):
        for emotion_dir in sorted(p for p in (subject_dir / "micro").iterdir() if p.is_dir()):
            for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                frames = numbered_frames(clip_dir)
                onset, offset = (frames[0][0], frames[-1][0]) if frames else (0, 0)  # empty: clip_span says so
                add_clip(table, dataset="smic", subject=subject_dir.name, clip=clip_dir.name,
                         emotion=emotion_dir.name.strip().lower(), onset=onset, apex=None, offset=offset,
                         clip_dir=clip_dir, where=str(clip_dir.relative_to(subjects_dir)), emotions=EMOTIONS,
                         fps=FPS)
    return table


def _natural(path: Path):
    """s2 before s10."""
    digits = "".join(c for c in path.name if c.isdigit())
    return (int(digits) if digits else 0, path.name)
