"""Realistic synthetic micro-expressions: real face photographs, animated by action-unit motions.

The embedded dataset must look like the real thing, or it hides what does not learn. So:

- **Faces are photographs** that ship with installed packages (nothing is downloaded): the
  astronaut Eileen Collins from scikit-image (`skimage.data.astronaut`) and Grace Hopper from
  matplotlib's sample data. Subjects alternate between them.
- **One identity per subject**: each subject's face is the photograph through its own geometric
  change (scale, rotation, anisotropy, shear, a mirror, a smooth non-rigid warp that reshapes the
  face) and photometric change (gamma, contrast, brightness, colour tint, a lighting gradient,
  blur), pasted on its own background at its own place in a full frame (the face about 40 % of
  the frame's height, as in CASME II's raw 640x480 frames). Identity varies far more than
  expression: between two subjects almost every pixel differs, between onset and apex a few.
- **Expressions are action units**: local, smooth displacements of the skin around landmarks
  (brows, lids, nose, lips, chin) that rise from onset to apex and fall by the offset, with a
  peak of 1-3 px at the frame's native resolution (`SyntheticSpec.motion`).
- **Every frame moves a little**: head drift and jitter of a fraction of a pixel, light flicker,
  sensor noise and JPEG compression (by the writers).

Landmarks of the two photographs (dlib's 68-point model, measured once and stored here, so the
generator needs no dlib) place the action units. Emotions map to AUs as FACS-coded datasets do
(happiness 6+12, surprise 1+2, disgust 4+9, repression 15+17, anger 4+7, contempt unilateral 14,
...); `others` / `other` draw one of a few AUs per clip, as those classes mix many.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

# 68 dlib landmarks (x, y) of each photograph, in its own pixels
LANDMARKS = {
    "astronaut": [
        (180, 104), (180, 116), (181, 127), (182, 139), (185, 150), (191, 161), (200, 169), (210, 176), (221, 178),
        (233, 177), (244, 171), (254, 163), (261, 154), (265, 143), (268, 131), (270, 120), (272, 108), (187, 93),
        (192, 88), (200, 87), (208, 89), (216, 92), (236, 93), (244, 90), (252, 90), (260, 92), (265, 98), (226, 102),
        (225, 111), (225, 119), (225, 127), (214, 131), (219, 133), (224, 134), (229, 133), (234, 132), (195, 101),
        (200, 98), (207, 98), (212, 104), (206, 104), (200, 104), (238, 105), (243, 101), (250, 101), (255, 104),
        (250, 106), (244, 106), (201, 139), (209, 139), (218, 139), (224, 141), (230, 140), (237, 140), (245, 141),
        (237, 151), (229, 155), (222, 156), (216, 155), (208, 150), (204, 141), (218, 143), (223, 144), (229, 143),
        (242, 142), (229, 150), (223, 151), (217, 150)],
    "hopper": [
        (175, 198), (180, 223), (186, 247), (192, 269), (201, 291), (214, 309), (233, 321), (253, 328), (276, 330),
        (299, 327), (322, 318), (342, 305), (358, 287), (368, 264), (372, 240), (373, 213), (373, 185), (183, 186),
        (191, 171), (207, 164), (225, 164), (242, 169), (283, 166), (298, 157), (317, 154), (336, 159), (349, 171),
        (265, 189), (265, 206), (265, 222), (266, 238), (245, 247), (255, 250), (267, 253), (279, 250), (289, 246),
        (205, 198), (214, 192), (225, 191), (238, 196), (226, 199), (215, 200), (292, 193), (303, 186), (316, 185),
        (327, 189), (317, 193), (305, 194), (230, 280), (244, 273), (258, 271), (268, 273), (278, 271), (293, 272),
        (309, 273), (293, 285), (279, 289), (268, 290), (258, 290), (244, 287), (235, 279), (258, 278), (268, 279),
        (279, 278), (303, 274), (278, 278), (268, 280), (258, 279)],
}
PHOTOS = tuple(LANDMARKS)

# Action units as blobs of skin motion: (landmark indices whose mean is the centre, (outward, down)
# direction, Gaussian radius as a fraction of the face width, centre shift down as a fraction).
# "outward" is away from the face's vertical midline (negative: towards it).
AU_BLOBS: dict[str, list[tuple[tuple[int, ...], tuple[float, float], float, float]]] = {
    "1": [((21,), (0.0, -1.0), 0.07, 0.0), ((22,), (0.0, -1.0), 0.07, 0.0)],  # inner brow raiser
    "2": [((17, 18), (0.0, -1.0), 0.07, 0.0), ((25, 26), (0.0, -1.0), 0.07, 0.0)],  # outer brow raiser
    "4": [((19, 20, 21), (-0.5, 0.85), 0.08, 0.0), ((22, 23, 24), (-0.5, 0.85), 0.08, 0.0)],  # brow lowerer
    "6": [((40, 41), (0.0, -0.7), 0.09, 0.08), ((46, 47), (0.0, -0.7), 0.09, 0.08)],  # cheek raiser
    "7": [((40, 41), (0.0, -1.0), 0.045, 0.0), ((46, 47), (0.0, -1.0), 0.045, 0.0)],  # lid tightener
    "9": [((31, 32), (0.0, -0.9), 0.05, 0.0), ((34, 35), (0.0, -0.9), 0.05, 0.0), ((27, 28), (0.0, 0.5), 0.05, 0.0)],
    "10": [((50, 51, 52), (0.0, -1.0), 0.06, 0.0)],  # upper lip raiser
    "12": [((48,), (0.7, -0.7), 0.06, 0.0), ((54,), (0.7, -0.7), 0.06, 0.0)],  # lip corner puller
    "14": [((48,), (0.9, 0.0), 0.05, 0.0), ((54,), (0.9, 0.0), 0.05, 0.0)],  # dimpler
    "14u": [((54,), (0.9, -0.2), 0.05, 0.0)],  # unilateral dimpler (contempt)
    "15": [((48,), (0.0, 1.0), 0.06, 0.0), ((54,), (0.0, 1.0), 0.06, 0.0)],  # lip corner depressor
    "17": [((8, 57), (0.0, -1.0), 0.08, 0.0)],  # chin raiser
    "20": [((48,), (1.0, 0.2), 0.06, 0.0), ((54,), (1.0, 0.2), 0.06, 0.0)],  # lip stretcher
    # not expressions (the long videos' distractors): a blink and a jaw drop (talking)
    "45": [((37, 38), (0.0, 1.0), 0.04, 0.0), ((43, 44), (0.0, 1.0), 0.04, 0.0)],  # upper lids down (blink)
    "26": [((57, 8), (0.0, 1.0), 0.09, 0.0), ((57,), (0.0, 1.0), 0.05, 0.0), ((51,), (0.0, -0.3), 0.04, 0.0)],
}
# emotion (lower case) -> the AU combinations it may show (one drawn per clip)
EMOTION_AUS: dict[str, tuple[tuple[str, ...], ...]] = {
    "happiness": (("6", "12"),),
    "surprise": (("1", "2"),),
    "disgust": (("4", "9"),),
    "repression": (("15", "17"),),
    "others": (("7",), ("10",), ("14",)),
    "anger": (("4", "7"),),
    "contempt": (("14u",),),
    "other": (("10",), ("17",), ("9",)),
    "fear": (("1", "4", "20"),),
    "sadness": (("1", "4", "15"),),
    "negative": (("4", "7"),),
    "positive": (("6", "12"),),
    "neutral": ((),),
}
EMOTION_AUS.update(happy=EMOTION_AUS["happiness"], angry=EMOTION_AUS["anger"], sad=EMOTION_AUS["sadness"])


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """The photograph `name` as float32 RGB (H, W, 3); read from the installed packages."""
    if name == "astronaut":
        from skimage.data import astronaut

        image = astronaut()
    elif name == "hopper":
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    else:
        raise KeyError(f"unknown photograph {name}; choose one of {PHOTOS}")
    return image.astype(np.float32)


def pixel_grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel of a side x side image: float32 (side, side) each (cv2.remap's maps)."""
    return np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))


def _affine_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@dataclass
class Identity:
    """A subject: their face layer (RGB + alpha, with landmarks) and where it sits on their background."""

    face: np.ndarray  # float32 (S, S, 3)
    alpha: np.ndarray  # float32 (S, S) in [0, 1]
    landmarks: np.ndarray  # (68, 2) in face-layer pixels
    face_width: float  # jaw-to-jaw width in pixels
    top_left: tuple[int, int]  # (x, y) of the face layer in the frame
    background: np.ndarray  # float32 (H, W, 3)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """A square (x0, y0, x1, y1) around the face in frame pixels (what a cropped release keeps)."""
        low, high = self.landmarks.min(0), self.landmarks.max(0)
        centre = (low + high) / 2 + np.array(self.top_left)
        half = 0.6 * max(high - low)
        x0, y0 = int(round(centre[0] - half)), int(round(centre[1] - half * 0.95))
        side = int(round(2 * half))
        return x0, y0, x0 + side, y0 + side


def make_identity(rng: np.random.Generator, name: str, frame_size: tuple[int, int],
                  face_fraction: float = 0.4) -> Identity:
    """A new identity from photograph `name`, for frames of `frame_size` (width, height).

    The face (jaw to jaw) is about `face_fraction` of the frame's height: 190 px in CASME II's
    640x480 raw frames, as in the real recordings.
    """
    width, height = frame_size
    src, points = photo(name), np.array(LANDMARKS[name], np.float64)
    target_width = face_fraction * height * rng.uniform(0.88, 1.12)
    side = int(round(1.9 * target_width))
    scale = target_width / (points[16, 0] - points[0, 0])
    aspect, shear, angle = rng.uniform(0.9, 1.1), rng.uniform(-0.06, 0.06), np.radians(rng.uniform(-7, 7))
    flip = -1.0 if rng.random() < 0.5 else 1.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([flip * scale * aspect, scale / aspect])
    centre = points.mean(0)
    offset = np.array([side / 2, side / 2 + 0.05 * side]) - linear @ centre
    matrix = np.hstack([linear, offset[:, None]])
    face = cv2.warpAffine(src, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    landmarks = _affine_points(matrix, points)
    if flip < 0:  # a mirrored face: the subject's left and right swap, so do their landmarks
        landmarks = landmarks[_MIRROR]
    # a smooth non-rigid warp reshapes the face (out(p) = in(p + f(p)): features move by about -f)
    coarse = rng.normal(0, 0.035 * target_width, (4, 4, 2)).astype(np.float32)
    field = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
    grid_x, grid_y = pixel_grid(side)
    face = cv2.remap(face, grid_x + field[..., 0], grid_y + field[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)
    at = np.clip(np.rint(landmarks).astype(int), 0, side - 1)
    landmarks = landmarks - field[at[:, 1], at[:, 0]]
    # photometric: gamma, contrast, brightness, tint, a lighting gradient, blur
    face = 255.0 * (np.clip(face, 0, 255) / 255.0) ** rng.uniform(0.75, 1.35)
    face = (face - face.mean()) * rng.uniform(0.8, 1.2) + face.mean() + rng.uniform(-20, 20)
    face *= rng.uniform(0.85, 1.15, 3).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = ((grid_x - side / 2) * np.cos(direction) + (grid_y - side / 2) * np.sin(direction)) / side
    face *= (1 + rng.uniform(-0.35, 0.35) * ramp)[..., None]
    face = cv2.GaussianBlur(face, (0, 0), rng.uniform(0.3, 1.2))
    alpha = np.zeros((side, side), np.float32)
    cv2.ellipse(alpha, (side // 2, side // 2), (int(0.42 * side), int(0.49 * side)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.04 * side)
    # the background: a tone, a low-frequency texture and a gradient of its own
    texture = cv2.resize(rng.normal(0, 25, (6, 8, 3)).astype(np.float32), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    tone = rng.uniform(50, 190) + rng.uniform(-20, 20, 3)
    background = np.clip(tone.astype(np.float32) + texture, 0, 255)
    x0 = int(np.clip(width / 2 - side / 2 + rng.uniform(-0.08, 0.08) * width, 0, max(width - side, 0)))
    y0 = int(np.clip(height / 2 - side / 2 + rng.uniform(-0.06, 0.06) * height, 0, max(height - side, 0)))
    return Identity(face=np.clip(face, 0, 255).astype(np.float32), alpha=alpha, landmarks=landmarks,
                    face_width=float(target_width), top_left=(x0, y0), background=background)


# dlib's 68 points mirrored left <-> right (jaw, brows, nose wings, eyes, lips)
_MIRROR = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
                   + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
                   + [64, 63, 62, 61, 60, 67, 66, 65])


def expression_field(identity: Identity, aus: tuple[str, ...], amplitude: float) -> np.ndarray:
    """The apex displacement (S, S, 2) in pixels of the AUs `aus`; its largest displacement is `amplitude`."""
    side = identity.face.shape[0]
    field = np.zeros((side, side, 2), np.float32)
    if not aus:
        return field
    grid_x, grid_y = pixel_grid(side)
    midline = identity.landmarks[27:31, 0].mean()
    for au in aus:
        for indices, (outward, down), radius, shift in AU_BLOBS[au]:
            cx, cy = identity.landmarks[list(indices)].mean(0)
            cy += shift * identity.face_width
            sign = 1.0 if cx >= midline else -1.0
            sigma = radius * identity.face_width
            weight = np.exp(-((grid_x - cx) ** 2 + (grid_y - cy) ** 2) / (2 * sigma ** 2))
            field[..., 0] += amplitude * sign * outward * weight
            field[..., 1] += amplitude * down * weight
    peak = float(np.hypot(field[..., 0], field[..., 1]).max())  # the largest displacement: exactly `amplitude`
    return field * np.float32(amplitude / peak)


def render_clip(identity: Identity, field: np.ndarray, curve: np.ndarray, rng: np.random.Generator,
                grayscale: bool = False) -> list[np.ndarray]:
    """The frames (uint8, H x W x 3 RGB, or H x W) of one clip: the expression `field` scaled by
    `curve` (0 at onset, 1 at apex), small head motion, light flicker and sensor noise."""
    side = identity.face.shape[0]
    cv2.setRNGSeed(int(rng.integers(2**31)))  # cv2.randn below: reproducible from the clip's seed
    grid_x, grid_y = pixel_grid(side)
    drift = rng.normal(0, 0.4, 2)
    canvas = Canvas(identity)
    frames = []
    for i, intensity in enumerate(curve):
        head = drift * i / max(len(curve) - 1, 1) + rng.normal(0, 0.15, 2)
        map_x = grid_x - np.float32(intensity) * field[..., 0] - np.float32(head[0])
        map_y = grid_y - np.float32(intensity) * field[..., 1] - np.float32(head[1])
        flicker = rng.uniform(0.99, 1.01)
        frames.append(canvas.frame(map_x, map_y, flicker, rng.integers(0, 64, 2), grayscale))
    return frames


class Canvas:
    """A subject's frame being composed: their face layer warped by per-pixel maps, pasted on their
    background, with light flicker and sensor noise (one noise field drawn with cv2.randn when made:
    each frame takes a window of it at a random offset)."""

    def __init__(self, identity: Identity):
        side = identity.face.shape[0]
        height, width = identity.background.shape[:2]
        self.identity = identity
        self.x0, self.y0 = identity.top_left
        self.x1, self.y1 = min(self.x0 + side, width), min(self.y0 + side, height)
        self.height, self.width = height, width
        self.background = cv2.convertScaleAbs(identity.background)
        self.noise = np.empty((height + 64, width + 64, 3), np.int16)
        cv2.randn(self.noise, 0.0, 1.5)

    def frame(self, map_x: np.ndarray, map_y: np.ndarray, flicker: float, offset, grayscale: bool = False
              ) -> np.ndarray:
        """One frame: `out(p) = face(map(p))` pasted on the background, scaled by `flicker`, plus the noise
        window at `offset` (dx, dy in 0..63); uint8 RGB (H, W, 3), or (H, W) when `grayscale`."""
        identity, x0, y0, x1, y1 = self.identity, self.x0, self.y0, self.x1, self.y1
        face = cv2.remap(identity.face, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.remap(identity.alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
        a = alpha[: y1 - y0, : x1 - x0]
        region = identity.background[y0:y1, x0:x1]
        face = (region + (face[: y1 - y0, : x1 - x0] - region) * a) * np.float32(flicker)
        frame = self.background.copy()
        frame[y0:y1, x0:x1] = cv2.convertScaleAbs(face)
        dx, dy = offset
        frame = cv2.add(frame, self.noise[dy:dy + self.height, dx:dx + self.width], dtype=cv2.CV_8U)  # saturated
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if grayscale else frame
