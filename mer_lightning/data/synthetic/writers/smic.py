"""SMIC-HS's layout: `HS/s1/micro/negative/s1_ne_01/image046811.bmp`, no sheet (the class is the folder)."""

from __future__ import annotations

from pathlib import Path

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.files import write_frames
from mer_lightning.data.synthetic.layouts import register_layout

SHORT = {"negative": "ne", "positive": "po", "surprise": "sur"}  # the clip names' class abbreviations


@register_layout("smic", emotions=("negative", "positive", "surprise"), frame_size=(640, 480))
def write_smic_like(root: Path, spec: SyntheticSpec) -> Path:
    """Write an SMIC-HS-shaped tree: `HS/s1/micro/negative/s1_ne_01/image046811.bmp` (no sheet)."""
    root = Path(root)
    for clip in synth_clips(spec, first_frame=(10000, 90000)):
        name = f"s{clip.subject}_{SHORT.get(clip.emotion, clip.emotion[:2])}_{clip.number:02d}"
        clip_dir = root / "HS" / f"s{clip.subject}" / "micro" / clip.emotion / name
        write_frames(clip_dir, clip, lambda n: f"image{n:06d}.bmp")
    return root
