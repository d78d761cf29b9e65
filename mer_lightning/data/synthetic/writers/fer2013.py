"""FER-2013's layout: `fer2013.csv` (emotion, pixels, Usage) with one image duplicated across parts, or
the folder release `train/<class>/*.jpg`, `test/<class>/*.jpg` (48x48 grey apex images of the clips)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pandas as pd

from mer_lightning.data.synthetic.clips import SyntheticSpec, synth_clips
from mer_lightning.data.synthetic.layouts import register_layout

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the CSV's order
NAMES = {"anger": "angry", "happiness": "happy", "sadness": "sad"}


@register_layout("fer2013", emotions=CLASSES, frame_size=(320, 240))
def write_fer2013_like(root: Path, spec: SyntheticSpec, folders: bool = False) -> Path:
    """Write FER-2013's `fer2013.csv` (48x48 apex images, Usage 80/10/10 %), or with `folders` the
    folder release (`train/<class>/*.jpg`, `test/<class>/*.jpg`). The CSV repeats one training
    image in PrivateTest, as some real copies do.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, clip in enumerate(synth_clips(spec)):
        apex = clip.crop(clip.frames[clip.apex - clip.first])
        apex = cv2.cvtColor(apex, cv2.COLOR_RGB2GRAY) if apex.ndim == 3 else apex
        image = cv2.resize(apex, (48, 48), interpolation=cv2.INTER_AREA)
        usage = ("Training",) * 8 + ("PublicTest", "PrivateTest")
        emotion = NAMES.get(clip.emotion.lower(), clip.emotion.lower())
        rows.append((CLASSES.index(emotion), image, usage[i % 10]))
    if folders:
        for i, (code, image, usage) in enumerate(rows):
            part = "train" if usage == "Training" else "test"
            (root / part / CLASSES[code]).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / part / CLASSES[code] / f"{usage[:4]}_{i:05d}.jpg"), image)
        return root
    rows.append((rows[0][0], rows[0][1], "PrivateTest"))
    frame = pd.DataFrame({"emotion": [r[0] for r in rows], "pixels": [" ".join(map(str, r[1].ravel())) for r in rows],
                          "Usage": [r[2] for r in rows]})
    frame.to_csv(root / "fer2013.csv", index=False)
    return root
