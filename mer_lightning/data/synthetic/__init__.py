"""Small, realistic synthetic micro-expression datasets, written in the real datasets' layouts.

Frames are real face photographs animated by action-unit motions of 1-3 px, one identity per
subject, small head motion in every frame, in full frames where the face must be found
(`faces.py` renders them). Identity varies far more than expression, so raw appearance says little
about the class: a model must find the face and measure motion, as on CASME II or SAMM. Generated
offline from a seed in well under a minute.

- `clips.py`: the spec (`SyntheticSpec`) and the clips drawn from its seed (motion and timing);
- `faces.py`: the photograph renderer;
- `files.py`: frames and workbooks as the writers write them;
- `writers/<dataset>.py`: one writer per real layout (`docs/formats/`), quirks included, so that
  every reader is tested on files shaped like the real ones; each registers its layout
  (`layouts.py`), named after the dataset it imitates;
- `generate.py`: `ensure_synthetic` (generate once, safely shared by concurrent jobs) and
  `read_synthetic`, the reader of `data=synthetic`.
"""

from mer_lightning.data.synthetic.clips import (
           SynthClip,
           SyntheticSpec,
           intensity_curve,
           synth_clips,
)
from mer_lightning.data.synthetic.generate import SYNTHETIC_MARKER, ensure_synthetic, read_synthetic
from mer_lightning.data.synthetic.layouts import Layout, layout, layout_names

__all__ = ["SYNTHETIC_MARKER", "Layout", "SynthClip", "SyntheticSpec", "ensure_synthetic", "intensity_curve",
           "layout", "layout_names", "read_synthetic", "synth_clips"]
