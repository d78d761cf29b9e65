"""The files every synthetic writer writes: a clip's frames, and annotation workbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import pandas as pd

from mer_lightning.data.synthetic.clips import SynthClip


def write_frames(clip_dir: Path, clip: SynthClip, name: Callable[[int], str], *, crop: bool = False,
                 grey: bool = False, first: int | None = None) -> None:
    """Write the clip's frames to `clip_dir` as `name(<frame number>)` (numbered from `first`, default the
    clip's own first frame): JPEG quality 95, `crop` keeps the face box, `grey` writes colour frames grey."""
    clip_dir.mkdir(parents=True, exist_ok=True)
    start = clip.first if first is None else first
    for i, frame in enumerate(clip.frames):
        path = clip_dir / name(start + i)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
        image = clip.crop(frame) if crop else frame
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if grey else cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(path), image, params)


def write_xlsx(path: Path, rows: list[list] | None = None, *, sheets: dict[str, list[list]] | None = None) -> None:
    """A workbook whose rows are as they appear in the sheet (the header is one of them, wherever it
    stands): `rows` in one sheet (`Sheet1`), or `sheets` (name -> rows, in order; [] leaves one empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(path) as writer:
        for name, sheet_rows in (sheets if sheets is not None else {"Sheet1": rows or []}).items():
            pd.DataFrame(sheet_rows).to_excel(writer, sheet_name=name, header=False, index=False)
