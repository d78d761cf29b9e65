"""Per-video motion features for spotting (SOFTNet's preprocessing, training-free scoring possible).

For a video and a window k (in grid steps):

1. **Face, once per video**: on its first decodable frame, dlib finds the face and its 68 landmarks
   and that eye-levelled crop is applied to every frame (`vision.face`; `data.face=auto` does so on
   full frames); a release of face crops is used whole, its regions placed by the mean face
   (`vision.face.template_landmarks`). Crops are grey, `face_size` pixels (128 as SOFTNet).
2. **Frames are streamed** on a grid of every `stride`-th frame number (default round(fps / 30):
   every frame at 30 fps, every 7th at 200 fps, as SOFTNet downsamples SAMM-LV), decoded one at a
   time; only the last k + 1 crops are held. A frame that is missing (a gap in the numbering) or
   cannot be decoded (truncated) is bridged with the previous one and reported (`gaps`).
3. For each position t: **optical flow** between positions t and t + k (`vision.flow`, Farneback by
   default), **head motion removed** by subtracting the mean flow of a patch at the nose (landmark 28,
   `nose_radius` of the face), **eyes masked** (landmarks 36-41, 42-47, grown by `eye_margin` of the
   face) so blinks do not fire.
4. The **score** of position t: the largest mean flow magnitude over the regions of interest (each
   brow, the nose and cheeks, the mouth and chin); the learned spotter's **window**: u, v and optical
   strain of that flow, area-averaged to `window` x `window` pixels (float16).

Positions are placed in time at their window's centre, frame(t) + k * stride / 2. Features are kept
per (video, k) in memory and, with a cache folder, on disk (`FeatureStore`: one .npz per video and k,
keyed by the video's files and every option; written atomically), so each fold, rerun and parallel
worker reads them instead of recomputing them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from mer_lightning.data.clips import BadFrame
from mer_lightning.data.videos import Video, iter_frames
from mer_lightning.utils.errors import MERError
from mer_lightning.vision.face import FACE_METHODS, FaceNotFound, face_options, template_landmarks
from mer_lightning.vision.flow import FLOW_METHODS, FLOW_VERSION, dense_flow, optical_strain

log = logging.getLogger(__name__)

# bump when what `extract` computes changes: cached features are rebuilt
FEATURES_VERSION = 1
ROIS = {"right_brow": (17, 18, 19, 20, 21), "left_brow": (22, 23, 24, 25, 26), "nose_cheeks": (1, 2, 14, 15, 31, 35),
        "mouth_chin": (48, 54, 57, 6, 10)}
NOSE = 28
RIGHT_EYE, LEFT_EYE = tuple(range(36, 42)), tuple(range(42, 48))


@dataclass(frozen=True)
class FeatureOptions:
    """What decides a video's features (part of their cache key). `face`: auto (dlib on full frames, none
    on face crops), dlib or none; `stride`: 0 picks round(fps / 30)."""

    face: str = "auto"
    face_size: int = 128
    flow: str = "farneback"
    window: int = 16
    stride: int = 0
    eye_margin: float = 0.08
    nose_radius: float = 0.06

    def __post_init__(self):
        if self.face not in ("auto", *FACE_METHODS):
            raise MERError(f"unknown data.face={self.face}; choose one of {('auto', *FACE_METHODS)}")
        if self.flow not in FLOW_METHODS:
            raise MERError(f"unknown spotter.flow={self.flow}; choose one of {FLOW_METHODS}")
        if int(self.face_size) < 32:
            raise MERError(f"spotter.face_size={self.face_size}: too small to measure motion on; use 64-192 (128)")
        if self.stride < 0 or self.window < 0:
            raise MERError("spotter.stride and spotter.window must be >= 0 (stride 0: round(fps / 30))")

    def stride_for(self, fps: float) -> int:
        return int(self.stride) or max(1, int(round(float(fps or 30.0) / 30.0)))

    def wants_face(self, video: Video) -> bool:
        return self.face == "dlib" or (self.face == "auto" and not video.cropped)

    def key(self) -> dict:
        face = face_options() | {"mode": self.face} if self.face != "none" else "none"
        return {**asdict(self), "face": face, "flow_version": FLOW_VERSION, "version": FEATURES_VERSION}


@dataclass
class VideoFeatures:
    """One video's features at window k: per position t (window start `starts[t]`, a frame number)."""

    video: str
    k: int  # grid steps between the two frames of a flow
    stride: int  # frames per grid step
    starts: np.ndarray  # int64 (n,)
    score: np.ndarray  # float32 (n,) region-of-interest flow magnitude
    windows: np.ndarray | None = None  # float16 (n, 3, W, W): u, v, strain
    gaps: list[str] = field(default_factory=list)  # frames bridged with the previous one, and why
    landmarks: str = "dlib"  # where the regions came from: dlib, or template (a crop used whole)

    @property
    def centres(self) -> np.ndarray:
        """Each position's place in time: the middle of its window (a frame number, may be fractional)."""
        return self.starts + self.k * self.stride / 2.0

    @property
    def span(self) -> int:
        """Frames a window covers, k * stride."""
        return self.k * self.stride


class FaceCrop:
    """A video's face: the crop (one transform from its first frame) and its regions in crop pixels."""

    def __init__(self, size: int, transform=None, landmarks: np.ndarray | None = None, eye_margin: float = 0.08,
                 nose_radius: float = 0.06):
        self.size, self.transform = size, transform
        self.measured = landmarks is not None
        self.landmarks = landmarks if landmarks is not None else template_landmarks(size)
        s = size
        grid_y, grid_x = np.mgrid[0:s, 0:s]
        self.eyes = np.zeros((s, s), np.uint8)
        grow = max(1, int(round(eye_margin * s)))
        for eye in (RIGHT_EYE, LEFT_EYE):
            hull = cv2.convexHull(np.round(self.landmarks[list(eye)]).astype(np.int32))
            cv2.fillConvexPoly(self.eyes, hull, 1)
        self.eyes = cv2.dilate(self.eyes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))) > 0
        nx, ny = self.landmarks[NOSE]
        self.nose = (grid_x - nx) ** 2 + (grid_y - ny) ** 2 <= (nose_radius * s) ** 2
        pad = 0.06 * s
        self.rois = []
        for name, points in ROIS.items():
            low, high = self.landmarks[list(points)].min(0) - pad, self.landmarks[list(points)].max(0) + pad
            if name.endswith("brow"):
                low[1] -= pad  # the forehead above the brow moves with it
            box = (grid_x >= low[0]) & (grid_x <= high[0]) & (grid_y >= low[1]) & (grid_y <= high[1])
            box &= ~self.eyes & ~self.nose
            if box.sum() >= 4:
                self.rois.append((name, box))
        if not self.rois or self.nose.sum() == 0:
            raise FaceNotFound(f"the face regions do not fit a {s}x{s} crop")

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The grey face crop of a frame, `size` x `size` uint8."""
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.transform is not None:
            return self.transform.apply(image, self.size)
        return cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)


def find_face(video: Video, options: FeatureOptions, aligner=None) -> tuple[FaceCrop, int]:
    """The video's face crop from its first decodable frame, and that frame's number; FaceNotFound when the
    face cannot be found (or no frame decodes)."""
    for number, image, _ in iter_frames(video, video.numbers[: min(len(video.numbers), 50)]):
        if image is None:
            continue
        if not options.wants_face(video):
            return FaceCrop(options.face_size, eye_margin=options.eye_margin, nose_radius=options.nose_radius), number
        if aligner is None:
            raise MERError("a face aligner is needed for full frames (data.face=auto on a full-frame release)")
        transform = aligner.estimate(image)
        landmarks = transform.map_points(transform.landmarks, options.face_size)
        return FaceCrop(options.face_size, transform, landmarks, options.eye_margin, options.nose_radius), number
    raise FaceNotFound("none of its first frames could be decoded")


def grid(video: Video, stride: int) -> np.ndarray:
    """The frame numbers the features are measured on: every `stride`-th from the first to the last frame."""
    return np.arange(video.first, video.last + 1, stride, dtype=np.int64)


def extract(video: Video, ks: Sequence[int], options: FeatureOptions, face: FaceCrop) -> dict[int, VideoFeatures]:
    """The features of `video` at every window in `ks` (grid steps), in one pass over its frames."""
    ks = sorted({int(k) for k in ks if int(k) >= 1})
    stride = options.stride_for(video.fps)
    numbers = grid(video, stride)
    depth = max(ks) + 1
    ring: list[np.ndarray | None] = [None] * depth
    out = {k: ([], [], []) for k in ks}  # starts, scores, windows
    gaps: list[str] = []
    previous = None
    for j, (number, image, problem) in enumerate(iter_frames(video, numbers)):
        if image is None:
            if previous is None:
                continue
            gaps.append(f"frame {number}: {problem}; bridged with the previous frame")
            crop = previous
        else:
            crop = face.crop(image)
        previous = crop
        ring[j % depth] = crop
        for k in ks:
            if j - k < 0 or ring[(j - k) % depth] is None:
                continue
            flow = dense_flow(ring[(j - k) % depth], crop, options.flow)
            score, window = motion(flow, face, options.window)
            out[k][0].append(int(numbers[j - k]))
            out[k][1].append(score)
            if window is not None:
                out[k][2].append(window)
    if previous is None:
        raise BadFrame("no frame of the video could be decoded")
    features = {}
    for k, (starts, scores, windows) in out.items():
        features[k] = VideoFeatures(
            video.id, k, stride, np.asarray(starts, np.int64), np.asarray(scores, np.float32),
            np.stack(windows).astype(np.float16) if windows else (
                np.zeros((0, 3, options.window, options.window), np.float16) if options.window else None),
            gaps, "dlib" if face.measured else "template")
    return features


def motion(flow: np.ndarray, face: FaceCrop, window: int) -> tuple[float, np.ndarray | None]:
    """(score, window) of one flow field: head motion removed at the nose, eyes masked; the largest mean
    magnitude over the regions; u, v, strain area-averaged to `window` pixels (None for 0)."""
    flow = flow - flow[face.nose].mean(0)
    flow[face.eyes] = 0.0
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    score = max(float(magnitude[box].mean()) for _, box in face.rois)
    if not window:
        return score, None
    strain = optical_strain(flow)
    strain[face.eyes] = 0.0
    channels = np.stack([flow[..., 0], flow[..., 1], strain])
    small = np.stack([cv2.resize(c, (window, window), interpolation=cv2.INTER_AREA) for c in channels])
    return score, small.astype(np.float16)


def video_signature(video: Video) -> str:
    """What identifies a video's files: its id, folder, frame names and the size and time of its first and
    last frame files (a re-encoded or replaced video gets new features)."""
    stats = []
    for i in (0, len(video.names) - 1):
        try:
            st = video.path(i).stat()
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append(None)
    names = hashlib.sha256("\n".join(video.names).encode("utf-8", "surrogateescape")).hexdigest()
    text = json.dumps([video.id, str(video.folder), names, stats, float(video.fps)], default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:20]


class FeatureStore:
    """Features per (video, k): in memory, then on disk under `cache_dir` (None: memory only).

    `faces(videos)` finds each video's face once (a video without one is reported, never features);
    `get(video, k)` returns its features, computing (and caching) them when needed; `ensure(videos, ks,
    jobs)` computes every missing (video, k) first, `jobs` videos at a time in worker processes."""

    def __init__(self, options: FeatureOptions, cache_dir: str | Path | None = None, dataset: str = "data"):
        self.options = options
        digest = hashlib.sha256(json.dumps(options.key(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        self.folder = Path(cache_dir) / "spotting" / f"{dataset}-{digest}" if cache_dir else None
        self._memory: dict[tuple[str, int], VideoFeatures] = {}
        self._faces: dict[str, FaceCrop] = {}
        self._aligner = None

    def aligner(self, videos: Iterable[Video] = ()):
        if self._aligner is None and any(self.options.wants_face(v) for v in videos):
            from mer_lightning.data.preprocessing import Preprocessing

            self._aligner = Preprocessing(face="dlib").make_aligner()
        return self._aligner

    def path(self, video: Video, k: int) -> Path | None:
        return self.folder / f"{video_signature(video)}-k{k}.npz" if self.folder else None

    def cached(self, video: Video, k: int) -> bool:
        path = self.path(video, k)
        return (video.id, k) in self._memory or (path is not None and path.is_file())

    def face(self, video: Video) -> FaceCrop:
        """The video's face crop (found once); FaceNotFound / BadFrame when there is none."""
        if video.id not in self._faces:
            self._faces[video.id] = find_face(video, self.options, self.aligner([video]))[0]
        return self._faces[video.id]

    def faces(self, videos: Sequence[Video], ks: Sequence[int] = ()) -> list[tuple[Video, str]]:
        """The videos (of those whose features at `ks` are not all cached) whose face cannot be found, and why."""
        missing = []
        for video in videos:
            if ks and all(self.cached(video, k) for k in ks):
                continue
            try:
                self.face(video)
            except (FaceNotFound, BadFrame) as err:
                missing.append((video, f"no face found on its first frame ({err})"))
        return missing

    def get(self, video: Video, k: int) -> VideoFeatures:
        key = (video.id, int(k))
        if key not in self._memory:
            loaded = self._load(video, k)
            if loaded is None:
                self._compute(video, [k])
                loaded = self._memory.get(key) or self._load(video, k)
            self._memory[key] = loaded
        return self._memory[key]

    def ensure(self, videos: Sequence[Video], ks: Sequence[int], jobs: int = 1) -> None:
        """Compute every (video, k) of `videos` x `ks` not cached yet (`jobs` > 1: in worker processes,
        which need a cache folder to hand their features back)."""
        todo = [(v, [k for k in ks if not self.cached(v, k)]) for v in videos]
        todo = [(v, missing) for v, missing in todo if missing]
        if not todo:
            return
        log.info("Spotting features: %d video(s) to measure (k = %s grid steps)", len(todo), sorted(set(ks)))
        if jobs > 1 and self.folder is not None and len(todo) > 1:
            from joblib import Parallel, delayed

            Parallel(n_jobs=jobs, backend="loky")(delayed(_measure_in_worker)(self.options, self.folder, v, missing)
                                                  for v, missing in todo)
            return
        for video, missing in todo:
            self._compute(video, missing)

    def _compute(self, video: Video, ks: Sequence[int]) -> None:
        for k, features in extract(video, ks, self.options, self.face(video)).items():
            self._memory[(video.id, k)] = features
            self._save(video, features)

    def _load(self, video: Video, k: int) -> VideoFeatures | None:
        path = self.path(video, k)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                windows = data["windows"] if data["windows"].size or self.options.window else None
                return VideoFeatures(video.id, int(data["k"]), int(data["stride"]), data["starts"], data["score"],
                                     windows, json.loads(str(data["gaps"])), str(data["landmarks"]))
        except (OSError, ValueError, KeyError) as err:
            log.warning("Cached features %s cannot be read (%s): measured again", path, err)
            return None

    def _save(self, video: Video, features: VideoFeatures) -> None:
        path = self.path(video, features.k)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.npz")
        try:
            windows = features.windows if features.windows is not None else np.zeros(0, np.float16)
            np.savez(tmp, k=features.k, stride=features.stride, starts=features.starts, score=features.score,
                     windows=windows, gaps=json.dumps(features.gaps), landmarks=features.landmarks)
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise MERError(f"could not write the spotting features {path} ({err.strerror or err}); free some disk "
                           "space or choose another place with `paths.cache_dir=...` (null: in memory)") from err


def _measure_in_worker(options: FeatureOptions, folder: Path, video: Video, ks: Sequence[int]) -> None:
    store = FeatureStore(options)
    store.folder = folder
    store._compute(video, ks)
