"""What is computed per clip: frame selection, face crop, frames, motion; the clip's shape (T, C, H, W).

A clip goes through three steps:

1. **Frames**: `data.frames` picks the time steps (`uniform`: T frames from onset to offset,
   `apex`, `onset_apex`; `clips.frame_plan`), plus the onset frame for motion inputs.
2. **Face**: `data.face=dlib` finds the face on the onset frame and applies that one crop to every
   frame (`vision.face`); `none` uses the whole frame; `auto` (the default of datasets with
   full-frame releases) uses dlib on full frames and nothing on clips that are already face
   crops (`Sample.cropped`: CASME II `Cropped`, FER-2013).
3. **Input** (`data.input`), what the model sees:

   | input      | shape            | what                                                          |
   |------------|------------------|---------------------------------------------------------------|
   | `frames`   | (T, C, S, S)     | the selected frames (appearance), uint8                        |
   | `diff`     | (1, C, S, S)     | apex - onset                                                  |
   | `flow`     | (1, 3, S, S)     | onset -> apex optical flow u, v and optical strain             |
   | `diff_seq` | (T, C, S, S)     | frame t - onset, for each of the T selected frames             |
   | `flow_seq` | (T, 3, S, S)     | onset -> frame t flow u, v, strain, for each of the T frames    |

   | `stored`   | (T, C, S, S)     | a stored input (`data=precomputed`: an image or a `.npy` array) |

   (S = `data.image_size`, C = 1 grayscale or 3 RGB.) `flow` is `flow_seq` with T=1 at the apex.
   `stored` is computed by someone else: the file's content as it is, only resized to S and
   scaled into [0, 1] (`Stored.scale`); T and C are the files' (checked against `data.num_frames` and
   `data.channels`, which the data config states: `data.reader.channels` for data=precomputed).

**Motion is measured at face resolution.** Flow and differences are computed on the (aligned)
face at `data.flow_size` pixels and only then resized to `image_size` (area averaging): a 1-2 px
micro-expression on a 200 px face stays 1-2 px at 192 px (the configs' default), where flow can see
it, but is a third of a pixel at 28 px, where Farneback loses it. Frames (appearance) are decoded straight at
`image_size`.

**Scaling.** Flow channels (u, v and the optical strain `vision.flow.optical_strain`) are scaled into
[0, 1] per clip, jointly over all T steps, so a sequence keeps its rise and fall (`normalise_flow`):
by default (`data.flow_scaling=maxabs`) u and v become 0.5 + u / (2 max|u|), so no motion is 0.5
in every clip and every step and the sign is kept, and strain becomes strain / max(strain);
`minmax` scales each channel min-max (STSTNet's scaling, where zero motion lands at a different
level in every clip: measured on the realistic embedded data, cnn_bilstm's pooled UF1 fell from 0.87
to 0.80 with it). Both throw away how large the motion was. `pixels` keeps it: one constant for
every clip, u and v become 0.5 + u / (2 flow_scale) with u in pixels of the face at `flow_size`
(a motion of `flow_scale` px reaches 0 or 1; larger ones go beyond), strain becomes
strain / (0.1 flow_scale). Differences map `(b - a) / 510 + 0.5` into [0, 1] (0.5 = no change).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_lightning.data.clips import (
    FRAME_MODES,
    BadFrame,
    frame_plan,
    frames_for,
    read_gray_or_color,
    truncated_jpeg,
)
from mer_lightning.data.samples import Sample, Stored
from mer_lightning.utils.errors import MERError
from mer_lightning.vision.face import FACE_METHODS, INSTALL_HINT, face_options
from mer_lightning.vision.flow import (
    FLOW_METHODS,
    FLOW_VERSION,
    dense_flow,
    diff_input,
    minmax,
    optical_strain,
)

INPUTS = ("frames", "diff", "flow", "diff_seq", "flow_seq", "stored")
MOTION_INPUTS = ("diff", "flow", "diff_seq", "flow_seq")
STORED_SCALES = ("auto", "minmax")  # or a number: the stored values are divided by it
# bump when what `read_stored` computes changes (stored inputs' cache entries only)
STORED_VERSION = 1
FACE_MODES = ("auto", *FACE_METHODS)
FLOW_SCALINGS = ("maxabs", "minmax", "pixels")
# bump when what `Preprocessing.process` computes changes: cached arrays are rebuilt
PREPROCESSING_VERSION = 2


def input_channels(input: str = "frames", grayscale: bool | str = True, stored: int | str | None = None) -> int:
    """Channels the model receives: frames / diff / diff_seq 1 (grayscale) or 3 (RGB); flow / flow_seq 3
    (u, v, strain); stored: the stored files' channels, as the data config states them (`stored`).

    The one place channels are derived: the OmegaConf resolver `${input_channels:${data.input},${data.grayscale}}`
    (what `data.channels` and the model's `in_chans` read; data=precomputed adds `${data.reader.channels}`)
    and `Preprocessing.out_channels` (what the DataModule serves) both call it.
    """
    if input not in INPUTS:
        raise MERError(f"unknown data.input={input}; choose one of {INPUTS}")
    if input == "stored":
        try:
            channels = int(stored) if stored not in (None, "", "null", "None") else 0
        except (TypeError, ValueError):
            channels = 0
        if channels < 1:
            raise MERError(f"data.input=stored serves inputs stored in files (data=precomputed) with the channels the "
                           f"data config states, and it states {stored!r}: set data.reader.channels=3 (flow u, v, "
                           "strain or RGB images), 1 (grayscale) or the C of (C, H, W) arrays")
        return channels
    if isinstance(grayscale, str):
        grayscale = grayscale.strip().lower() not in ("false", "0", "no")
    if input in ("flow", "flow_seq"):
        return 3
    return 1 if grayscale else 3


def resize_channels(array: np.ndarray, size: int) -> np.ndarray:
    """(T, C, H, W) float32 -> (T, C, size, size), area-averaged (what shrinking a measured field wants)."""
    t, c, h, w = array.shape
    if (h, w) == (size, size):
        return array
    interpolation = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    planes = [cv2.resize(plane, (size, size), interpolation=interpolation) for plane in array.reshape(t * c, h, w)]
    return np.stack(planes).reshape(t, c, size, size)


def _raw_frame(sample: Sample, i: int, channels: int) -> np.ndarray:
    if sample.image is not None:
        image = sample.image
        if channels == 3 and image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return image
    return read_gray_or_color(sample.frames[i], channels)


def decode_steps(sample: Sample, plan: list[tuple[int, int, float]], size: int, channels: int,
                 aligner=None, rounded: bool = True) -> np.ndarray:
    """The frames of `plan` (index a, index b, weight of b), face-cropped and resized: (T, C, size, size).

    With an `aligner`, the crop is estimated once on the onset frame and applied to every frame.
    `rounded`: uint8 (what appearance inputs store); else float32 (what motion is measured on).
    """
    if aligner is not None:
        numbers = np.array(sample.frame_numbers or [0])
        onset_index = int(np.argmin(np.abs(numbers - sample.onset))) if sample.frame_numbers else 0
        transform = aligner.estimate(_raw_frame(sample, onset_index, channels))
    cache: dict[int, np.ndarray] = {}

    def frame(i: int) -> np.ndarray:
        if i not in cache:
            image = _raw_frame(sample, i, channels)
            if aligner is not None:
                image = transform.apply(image, size)
            else:
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            cache[i] = image.astype(np.float32)
        return cache[i]

    steps = np.stack([(1 - w) * frame(a) + w * frame(b) for a, b, w in plan])
    if rounded:
        steps = np.clip(np.rint(steps), 0, 255).astype(np.uint8)
    return steps[:, None] if steps.ndim == 3 else steps.transpose(0, 3, 1, 2)


def read_stored(stored: Stored, size: int) -> np.ndarray:
    """A stored input as the model gets it: float32 (T, C, size, size) in [0, 1] (for `auto` and `minmax`
    scaling of images and of arrays stored in [0, 1]); BadFrame naming the file when it cannot be read.

    Images (PNG / JPG / BMP, 1 or 3 channels, RGB order) are decoded as they are (no grayscale or colour
    conversion); `.npy` arrays are (C, H, W) or (T, C, H, W). Each plane is resized to `size` (area
    averaging when shrinking, bilinear when enlarging; nothing at its own size), then scaled by
    `stored.scale`: `auto` divides 8-bit images by 255 and 16-bit ones by 65535 and keeps arrays as stored.
    """
    path = Path(stored.path)
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise BadFrame(f"cannot read array {path} ({err})") from None
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.iscomplexobj(array):
            raise BadFrame(f"array {path} holds {array.dtype} values: store real numbers")
        clip, peak = (array[None] if array.ndim == 3 else array), 1.0
    else:
        data = np.fromfile(str(path), np.uint8) if path.is_file() else np.empty(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if image is None:
            raise BadFrame(f"cannot decode image {path}")
        if truncated_jpeg(data[:2].tobytes(), data[-2:].tobytes()):
            raise BadFrame(f"truncated JPEG {path}")
        if image.ndim == 3 and image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif image.ndim != 2:
            raise BadFrame(f"image {path} has {image.shape[2]} channels: store 1 (grayscale) or 3 (RGB)")
        peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
        clip = (image[None] if image.ndim == 2 else image.transpose(2, 0, 1))[None]
    if clip.ndim != 4 or min(clip.shape) < 1:
        raise BadFrame(f"{path} has shape {tuple(array.shape) if path.suffix.lower() == '.npy' else clip.shape}: "
                       "expected (C, H, W) or (T, C, H, W)")
    if tuple(clip.shape[:2]) != tuple(stored.shape[:2]):
        raise BadFrame(f"{path} now holds T x C = {clip.shape[0]} x {clip.shape[1]}, not the {stored.shape[0]} x "
                       f"{stored.shape[1]} read from its header (changed since?)")
    clip = resize_channels(np.ascontiguousarray(clip, dtype=np.float32), size)
    if not np.isfinite(clip).all():
        raise BadFrame(f"{path} holds NaN or infinite values")
    if stored.scale == "minmax":
        low = clip.min(axis=(0, 2, 3), keepdims=True)
        span = clip.max(axis=(0, 2, 3), keepdims=True) - low
        return np.where(span > 0, (clip - low) / np.where(span > 0, span, 1), 0).astype(np.float32)
    divisor = peak if stored.scale == "auto" else float(stored.scale)
    return clip if divisor == 1.0 else clip / np.float32(divisor)


def load_clip(sample: Sample, mode: str, num_frames: int, size: int, channels: int, aligner=None) -> np.ndarray:
    """Decode a clip's selected frames (whole frames, or the onset's face crop), size x size: uint8 (T, C, H, W)."""
    return decode_steps(sample, frame_plan(sample, mode, num_frames), size, channels, aligner)


def flow_sequence(onset: np.ndarray, frames: np.ndarray, method: str) -> np.ndarray:
    """Onset -> frame t flow u, v and optical strain for each frame: float32 (T, 3, H, W), in pixels."""
    steps = []
    for frame in frames:
        flow = dense_flow(onset, frame, method)
        steps.append(np.stack([flow[..., 0], flow[..., 1], optical_strain(flow)]))
    return np.stack(steps).astype(np.float32)


def normalise_flow(flow: np.ndarray, how: str = "maxabs", scale: float = 2.0) -> np.ndarray:
    """Scale (T, 3, H, W) u, v, strain for the network, jointly over all time steps of a clip.

    `maxabs`: u and v become 0.5 + u / (2 max|u|), so no motion is 0.5 in every clip and step and the
    sign is kept; strain (never negative) becomes strain / max(strain). `minmax`: each channel
    min-max scaled (STSTNet's scaling; where zero motion lands differs from clip to clip). Both per
    clip. `pixels`: the same constant for every clip, so a larger motion stays larger: u and v
    become 0.5 + u / (2 scale) (u in pixels), strain becomes strain / (0.1 scale).
    """
    if how == "minmax":
        return np.stack([minmax(flow[:, c]) for c in range(flow.shape[1])], axis=1)
    if how == "pixels":
        out = np.empty_like(flow, dtype=np.float32)
        out[:, :2] = 0.5 + flow[:, :2] / (2.0 * scale)
        out[:, 2:] = flow[:, 2:] / (0.1 * scale)
        return out
    out = np.empty_like(flow, dtype=np.float32)
    for c in range(flow.shape[1]):
        peak = float(np.abs(flow[:, c]).max())
        scale = 1.0 / peak if peak > 1e-12 else 0.0
        out[:, c] = flow[:, c] * scale if c == 2 else 0.5 + 0.5 * flow[:, c] * scale
    return out


@dataclass(frozen=True)
class Preprocessing:
    """What turns a sample's frame files into the array the model gets (see the module docstring)."""

    input: str = "flow_seq"
    face: str = "auto"
    frames: str = "uniform"
    num_frames: int = 8
    image_size: int = 32
    channels: int = 1  # of the decoded frames: 1 grayscale, 3 RGB (flow always decodes grayscale)
    flow: str = "farneback"
    flow_size: int | None = 192  # motion measured at this face size (None: at image_size)
    face_margin: float = 0.2
    flow_scaling: str = "maxabs"  # how flow channels are scaled for the network (`normalise_flow`)
    flow_scale: float = 2.0  # pixels at flow_size that `pixels` scaling maps to 0 or 1
    stored_channels: int | None = None  # input=stored: the channels of the stored files (the config states them)

    def __post_init__(self):
        if self.input not in INPUTS:
            raise MERError(f"unknown data.input={self.input}; choose one of {INPUTS}")
        if self.face not in FACE_MODES:
            raise MERError(f"unknown data.face={self.face}; choose one of {FACE_MODES}")
        if self.frames not in FRAME_MODES:
            raise MERError(f"unknown data.frames={self.frames}; choose one of {FRAME_MODES}")
        if self.flow not in FLOW_METHODS:
            raise MERError(f"unknown data.flow={self.flow}; choose one of {FLOW_METHODS}")
        if self.input == "stored":
            input_channels("stored", stored=self.stored_channels)
        if self.channels not in (1, 3):
            raise MERError(f"frames are decoded with 1 (grayscale) or 3 (RGB) channels, not {self.channels}")
        if self.flow_scaling not in FLOW_SCALINGS:
            raise MERError(f"unknown data.flow_scaling={self.flow_scaling}; choose one of {FLOW_SCALINGS}")
        if not self.flow_scale > 0:
            raise MERError(f"data.flow_scale={self.flow_scale}: give the motion in pixels (at data.flow_size) that "
                           "data.flow_scaling=pixels maps to 0 or 1, e.g. 2.0")
        if self.flow_size is not None and int(self.flow_size) < 8:
            raise MERError(f"data.flow_size={self.flow_size} is too small to measure motion on; use 112-256 (the configs say 192) "
                           "(or null: at data.image_size)")

    @property
    def time_steps(self) -> int:
        if self.input == "stored":
            return int(self.num_frames)
        return 1 if self.input in ("diff", "flow") else frames_for(self.frames, self.num_frames)

    @property
    def out_channels(self) -> int:
        return input_channels(self.input, self.channels == 1, self.stored_channels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, C, H, W) of one clip."""
        return self.time_steps, self.out_channels, self.image_size, self.image_size

    @property
    def dtype(self) -> np.dtype:
        """uint8 frames (served / 255), float16 motion; stored inputs float32, as read and scaled."""
        if self.input == "stored":
            return np.dtype(np.float32)
        return np.dtype(np.uint8 if self.input == "frames" else np.float16)

    @property
    def work_size(self) -> int:
        """The face resolution motion is measured at."""
        return int(self.flow_size or self.image_size)

    def options(self) -> dict:
        """The options that change the arrays (options that do not apply are left out)."""
        if self.input == "stored":  # the files' own scale and shape are in each sample's part of the cache key
            return {"input": "stored", "image_size": self.image_size, "num_frames": self.time_steps,
                    "channels": self.out_channels, "version": PREPROCESSING_VERSION, "stored_version": STORED_VERSION}
        face = face_options(self.face_margin) | {"mode": self.face} if self.face != "none" else "none"
        options = {"input": self.input, "face": face, "image_size": self.image_size,
                   "channels": 1 if self.input in ("flow", "flow_seq") else self.channels,
                   "version": PREPROCESSING_VERSION}
        if self.input not in ("diff", "flow"):
            options.update(frames=self.frames, num_frames=self.time_steps)
        if self.input in MOTION_INPUTS:
            options.update(flow_size=self.work_size)
        if self.input in ("flow", "flow_seq"):
            options.update(flow=self.flow, flow_version=FLOW_VERSION, flow_scaling=self.flow_scaling)
            if self.flow_scaling == "pixels":
                options.update(flow_scale=float(self.flow_scale))
        return options

    # -- faces -----------------------------------------------------------------------------------
    def wants_face(self, sample: Sample) -> bool:
        """Whether this sample's frames are searched for a face (`auto`: only full frames; stored inputs never)."""
        if self.input == "stored":
            return False
        return self.face == "dlib" or (self.face == "auto" and not sample.cropped)

    def make_aligner(self, samples=()):
        """dlib's aligner when some sample wants a face; a MERError saying how to install it if missing."""
        if self.input == "stored" or (not any(self.wants_face(s) for s in samples) and self.face != "dlib"):
            return None
        from mer_lightning.vision.face import FaceAligner

        try:
            return FaceAligner(margin=self.face_margin)
        except MERError as err:
            if self.face != "auto":
                raise
            raise MERError(f"data.face=auto finds faces with dlib because these frames are full frames, not "
                           f"face crops, and dlib is not available ({err}). Install it with {INSTALL_HINT}, or "
                           "set data.face=none to use whole frames.") from None

    def unfit(self, sample: Sample) -> str:
        """'' when this preprocessing can make the sample's input, else why not (naming its file): a stored
        input needs `input=stored` and the (T, C) the config states; a clip of frames any other input."""
        if self.input != "stored":
            if sample.stored is None:
                return ""
            return (f"{sample.stored.path} is a stored input and data.input={self.input} is computed from frames: "
                    "serve stored files with data.input=stored (data=precomputed's default)")
        if sample.stored is None:
            what = f"{sample.frames[0].parent} is a folder of frames" if sample.frames else f"{sample.id} has no stored file"
            return (f"{what} and data.input=stored takes stored files (images, .npy): compute an input from the "
                    "frames with data.input=flow_seq (or flow, diff, diff_seq, frames)")
        steps, channels = sample.stored.shape[:2]
        if steps != self.time_steps:
            return (f"{sample.stored.path} holds T={steps} time step(s) and data.num_frames={self.time_steps}: every "
                    "stored input must hold data.num_frames steps")
        if channels != self.out_channels:
            return (f"{sample.stored.path} has {channels} channel(s) and the set has {self.out_channels} "
                    "(data.reader.channels): store every input with the same channels")
        return ""

    # -- one sample ----------------------------------------------------------------------------
    def process(self, sample: Sample, aligner=None) -> np.ndarray:
        """The sample's array (T, C, H, W); BadFrame / FaceNotFound when it cannot be made."""
        if self.input == "stored":
            problem = self.unfit(sample)
            if problem:
                raise BadFrame(problem)
            return read_stored(sample.stored, self.image_size)
        aligner = aligner if self.wants_face(sample) else None
        if self.input == "frames":
            return load_clip(sample, self.frames, self.num_frames, self.image_size, self.channels, aligner)
        mode, count = ("apex", 1) if self.input in ("diff", "flow") else (self.frames, self.num_frames)
        onset_step = frame_plan(sample, "onset_apex", 2)[0]
        plan = [onset_step, *frame_plan(sample, mode, count)]
        channels = 1 if self.input in ("flow", "flow_seq") else self.channels
        steps = decode_steps(sample, plan, self.work_size, channels, aligner, rounded=False)
        onset, frames = steps[0], steps[1:]
        if self.input in ("diff", "diff_seq"):
            return resize_channels(diff_input(onset[None], frames), self.image_size).astype(np.float16)
        flow = flow_sequence(onset[0], frames[:, 0], self.flow)
        return normalise_flow(resize_channels(flow, self.image_size), self.flow_scaling,
                              self.flow_scale).astype(np.float16)
