"""Face detection, eye alignment and cropping with dlib (the optional `[face]` extra).

    pip install -e ".[face]"     # dlib-bin, face-recognition-models

The crop of a clip is computed ONCE, on its onset frame: dlib's frontal face detector (HOG +
linear SVM) finds the largest confident face (with one upsampling for small faces, then, when
still none is found, the best face scored just below the detector's threshold), the 68-landmark shape predictor places the eyes,
the frame is rotated about the midpoint of the eye centres so the eyes are level, and a square
box around the rotated landmarks, widened by `margin` on every side, is cut out. The same affine
transform is then applied to every frame of the clip, so the face does not jitter between frames
and the small motions of a micro-expression are not drowned by per-frame re-detection noise.

Model files: the detector is built into dlib; the landmark model
(`shape_predictor_68_face_landmarks.dat`) ships inside the `face_recognition_models` package.
Nothing is downloaded at run time.

Licence note: dlib's 68-landmark model was trained on the iBUG 300-W dataset, whose licence
excludes commercial use. Use `data.face=dlib` for research only, or bring your own aligner.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_lightning.utils.errors import MERError

# bump when the alignment changes: cached face crops are rebuilt
FACE_VERSION = 2
# the detector's score a face must reach when none reaches its default threshold (0)
LOW_THRESHOLD = -0.3
FACE_METHODS = ("none", "dlib")
INSTALL_HINT = 'pip install -e ".[face]"  (dlib-bin, face-recognition-models)'
LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
RIGHT_EYE = slice(36, 42)  # the subject's right eye: on the left of the image
LEFT_EYE = slice(42, 48)


class FaceNotFound(Exception):
    """No face on the frame the clip's crop is computed from: the clip is skipped and reported."""


def import_dlib():
    """dlib, or a MERError that says how to install it."""
    try:
        import dlib
    except ImportError as err:
        raise MERError(f"data.face=dlib needs dlib, which is not installed: {INSTALL_HINT}. "
                       "Or use data.face=none for datasets that are already cropped.") from err
    return dlib


def landmark_model_path() -> Path:
    """The 68-landmark model shipped by `face_recognition_models` (never downloaded)."""
    path = None
    try:
        import face_recognition_models

        path = Path(face_recognition_models.pose_predictor_model_location())
    except ImportError:
        # face_recognition_models 0.3 imports pkg_resources, which recent setuptools no longer ship:
        # locate the package without importing it
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is not None and spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]) / "models" / LANDMARK_MODEL
    if path is None or not path.is_file():
        raise MERError(f"dlib's landmark model {LANDMARK_MODEL} was not found (it ships in the "
                       f"face-recognition-models package): {INSTALL_HINT}")
    return path


def face_options(margin: float = 0.2, detect_max_side: int = 640) -> dict:
    """Everything that decides a crop (part of the cache key)."""
    return {"method": "dlib", "detector": "frontal_hog", "low_threshold": LOW_THRESHOLD, "landmarks": 68, "margin": margin,
            "detect_max_side": detect_max_side, "version": FACE_VERSION}


@dataclass(frozen=True)
class FaceTransform:
    """The affine map from a source frame to the square face crop, shared by the clip's frames."""

    matrix: np.ndarray  # 2x3, source pixel -> crop pixel (crop side `side`)
    side: int
    landmarks: np.ndarray  # (68, 2) on the frame it was estimated on
    angle: float  # degrees the frame was rotated by to level the eyes

    def apply(self, image: np.ndarray, size: int | None = None) -> np.ndarray:
        """The crop of `image` (same transform for every frame), resized to size x size."""
        crop = cv2.warpAffine(image, self.matrix, (self.side, self.side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        if size and size != self.side:
            interpolation = cv2.INTER_AREA if size < self.side else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (size, size), interpolation=interpolation)
        return crop

    def map_points(self, points: np.ndarray, size: int | None = None) -> np.ndarray:
        """Where source points land in the crop (resized to `size` when given)."""
        mapped = points @ self.matrix[:, :2].T + self.matrix[:, 2]
        return mapped * (size / self.side) if size else mapped


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre of the eye on the image's left, centre of the eye on the image's right)."""
    return landmarks[RIGHT_EYE].mean(0), landmarks[LEFT_EYE].mean(0)


class FaceAligner:
    """dlib face detection + 68 landmarks -> one eye-levelled square crop transform per clip."""

    def __init__(self, margin: float = 0.2, detect_max_side: int = 640):
        dlib = import_dlib()
        self.margin, self.detect_max_side = margin, detect_max_side
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(landmark_model_path()))
        self._rectangle = dlib.rectangle

    def options(self) -> dict:
        return face_options(self.margin, self.detect_max_side)

    @staticmethod
    def _for_dlib(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(image)

    def detect(self, image: np.ndarray):
        """The largest confident face (score at least half the best) as a dlib rectangle."""
        image = self._for_dlib(image)
        scale = min(1.0, self.detect_max_side / max(image.shape[:2]))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        # small faces need one upsampling (slower), only when none was found; a face the detector scores
        # just below its default threshold (glasses, a hat, dim light) is taken last, the best-scored one
        for upsample, threshold in ((0, 0.0), (1, 0.0), (0, LOW_THRESHOLD)):
            boxes, scores, _ = self.detector.run(small, upsample, threshold)
            if len(boxes):
                break
        else:
            raise FaceNotFound(f"no face found on a {image.shape[1]}x{image.shape[0]} frame")
        best = max(scores)
        if threshold < 0:
            box = boxes[int(np.argmax(scores))]
        else:
            confident = [(b, s) for b, s in zip(boxes, scores) if s >= 0.5 * best]
            box, _ = max(confident, key=lambda bs: (bs[0].width() * bs[0].height(), bs[1]))
        if scale < 1:
            box = self._rectangle(*(int(round(c / scale)) for c in (box.left(), box.top(), box.right(), box.bottom())))
        return box

    def landmarks(self, image: np.ndarray, box=None) -> np.ndarray:
        """The 68 landmarks (x, y) of the largest face: float64 (68, 2)."""
        image = self._for_dlib(image)
        shape = self.predictor(image, box if box is not None else self.detect(image))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def estimate(self, image: np.ndarray) -> FaceTransform:
        """The crop transform of the face on `image` (the clip's onset frame); FaceNotFound if none."""
        points = self.landmarks(image)
        left, right = eye_centres(points)
        angle = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
        centre = (left + right) / 2
        rotation = np.vstack([cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0), [0, 0, 1]])
        rotated = points @ rotation[:2, :2].T + rotation[:2, 2]
        low, high = rotated.min(0), rotated.max(0)
        middle = (low + high) / 2
        side = int(np.ceil(max(high - low) * (1 + 2 * self.margin)))
        if side < 8:
            raise FaceNotFound(f"face too small ({side} px)")
        shift = np.array([[1, 0, side / 2 - middle[0]], [0, 1, side / 2 - middle[1]], [0, 0, 1]])
        matrix = (shift @ rotation)[:2]
        return FaceTransform(matrix=matrix, side=side, landmarks=points, angle=angle)


# dlib's 68 landmarks of a mean frontal face, eyes levelled, in units of the landmarks' larger extent
# around the middle of their box (the mean of two measured photographs): where the regions of a face
# crop lie when no landmarks were measured on it (a release that ships face crops)
MEAN_SHAPE = np.array([
    [-0.5, -0.277], [-0.488, -0.148], [-0.468, -0.027], [-0.448, 0.094], [-0.41, 0.209], [-0.344, 0.315],
    [-0.247, 0.389], [-0.142, 0.445], [-0.024, 0.461], [0.099, 0.449], [0.216, 0.394], [0.32, 0.319],
    [0.399, 0.225], [0.446, 0.108], [0.473, -0.017], [0.488, -0.145], [0.5, -0.281], [-0.443, -0.367],
    [-0.395, -0.432], [-0.31, -0.455], [-0.221, -0.443], [-0.135, -0.414], [0.077, -0.415], [0.159, -0.454],
    [0.251, -0.46], [0.342, -0.436], [0.401, -0.373], [-0.023, -0.308], [-0.029, -0.217], [-0.029, -0.133],
    [-0.027, -0.049], [-0.14, -0.005], [-0.088, 0.013], [-0.031, 0.027], [0.027, 0.014], [0.079, -0.001],
    [-0.344, -0.292], [-0.294, -0.324], [-0.228, -0.326], [-0.168, -0.28], [-0.231, -0.273], [-0.291, -0.271],
    [0.11, -0.281], [0.165, -0.32], [0.235, -0.322], [0.29, -0.296], [0.238, -0.275], [0.175, -0.273],
    [-0.251, 0.122], [-0.172, 0.105], [-0.087, 0.099], [-0.029, 0.115], [0.028, 0.105], [0.104, 0.108],
    [0.187, 0.116], [0.105, 0.2], [0.027, 0.232], [-0.039, 0.24], [-0.097, 0.235], [-0.176, 0.2],
    [-0.222, 0.131], [-0.087, 0.139], [-0.035, 0.147], [0.025, 0.139], [0.156, 0.124], [0.025, 0.177],
    [-0.033, 0.187], [-0.091, 0.18]])


def template_landmarks(side: int, fill: float = 1 / 1.2, centre: tuple[float, float] = (0.5, 0.475)) -> np.ndarray:
    """The 68 landmarks (x, y) of a face crop of `side` pixels on which none were measured: the mean face,
    its landmarks spanning `fill` of the side around `centre` (fractions of the side). The defaults fit a
    crop that keeps 10 % around the landmarks (the embedded data's cropped release; real releases' crops
    are as tight or tighter)."""
    return (MEAN_SHAPE * fill + np.asarray(centre)) * side
