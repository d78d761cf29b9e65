"""The one LightningDataModule: the dataset's reader is a config choice (`conf/data/*.yaml`).

`MERDataModule.load()` reads the dataset (reader -> label scheme -> decoded clips) once per
run; the protocol then calls `set_fold(fold)` before each fold's training, and the loaders serve
only that fold's train / val / test samples. Batches are dicts:
`x` float32 (B, T, C, H, W), `y` int64 (B,), `index` int64 (B,) into the SampleTable.

`LongVideoData` is the same DataModule over a long-video dataset (spotting: `conf/data/cas2.yaml`,
`samm_lv`, `casme3_lv`, `synthetic_lv`): its reader returns videos with intervals (`videos()`), and its
clips are the labelled micro-expression intervals (what spot-then-recognise's recogniser trains on).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from mer_lightning.data.cache import CacheReport, ClipCache, Prepared
from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.preprocessing import Preprocessing
from mer_lightning.data.samples import SampleTable, check_sample_ids
from mer_lightning.data.splits import Fold
from mer_lightning.data.transforms import clip_augment
from mer_lightning.data.videos import VideoTable, check_video_ids, interval_clips
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)


class ClipDataset(Dataset):
    """Preprocessed clips (N, T, C, H, W), served as normalised float tensors.

    uint8 arrays (frames) are scaled by 1/255, float arrays (diff, flow: already in [0, 1]) are
    used as they are; then `(x - mean) / std`. The array may be memory-mapped (the cache): in
    DataLoader workers it is re-opened from its file instead of being copied into each worker.
    """

    def __init__(self, clips: np.ndarray, labels: np.ndarray, indices: list[int], mean: float, std: float,
                 transform=None):
        self.clips, self.labels, self.indices = clips, labels, list(indices)
        self.mean, self.std, self.transform = mean, std, transform
        self._rows = self._plain(clips)

    @staticmethod
    def _plain(clips):
        """A plain ndarray view (np.memmap indexing costs Python-level overhead on every access)."""
        return clips.view(np.ndarray) if isinstance(clips, np.memmap) else clips

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        clip = self._rows[index]
        if self.transform is not None:
            clip = self.transform(clip)
        return {"x": self._normalised(clip), "y": int(self.labels[index]), "index": index}

    def __getitems__(self, positions: list[int]) -> dict[str, Any] | list[dict[str, Any]]:
        """A whole batch in one read (what the DataLoader asks for when the dataset offers it).

        Without augmentation the batch's rows are taken from the array at once and normalised as
        one tensor: the same values as item by item, without the per-item Python and collate work
        (which, not the cache, bounds a loader of small clips). Augmented clips go one by one.
        """
        if self.transform is not None:
            return [self[i] for i in positions]
        rows = np.asarray([self.indices[i] for i in positions], dtype=np.int64)
        return {"x": self._normalised(self._rows[rows]), "y": torch.from_numpy(self.labels[rows].astype(np.int64)),
                "index": torch.from_numpy(rows)}

    def _normalised(self, clips: np.ndarray) -> torch.Tensor:
        # one copy, straight to float32 (also when the rows are read-only memory-mapped pages); the
        # in-place ops compute exactly what `(x / 255 - mean) / std` does
        x = torch.from_numpy(np.array(clips, dtype=np.float32))
        if clips.dtype == np.uint8:
            x.div_(255.0)
        return x.sub_(self.mean).div_(self.std)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        clips = self.clips
        if isinstance(clips, np.memmap) and getattr(clips, "filename", None):  # the cache's rows 0..N-1
            state["clips"] = ("memmap", clips.filename, len(clips))
        state.pop("_rows", None)
        return state

    def __setstate__(self, state: dict) -> None:
        clips = state["clips"]
        if isinstance(clips, tuple) and clips and clips[0] == "memmap":
            state["clips"] = np.load(clips[1], mmap_mode="r")[: clips[2]]
        state["_rows"] = self._plain(state["clips"])
        self.__dict__.update(state)


def collate_clips(batch):
    """The DataLoader's collate: a batch `ClipDataset.__getitems__` built whole passes through."""
    return batch if isinstance(batch, dict) else default_collate(batch)


class MERDataModule(pl.LightningDataModule):
    """Any dataset: `reader(root)` gives its SampleTable; everything after that is shared.

    The reader is chosen in `conf/data/<name>.yaml` as a partial (`_target_` + `_partial_: true`,
    with the reader's own options beside it, e.g. `layout` for CASME II); the keys every dataset
    shares live in `conf/_data.yaml`. `name` names the dataset in logs and the cache.
    """

    def __init__(
        self,
        root: str,
        reader: Callable[[Path], SampleTable],
        name: str = "data",
        classes: str | list[str] = "all",
        image_size: int = 32,
        num_frames: int = 8,
        frames: str = "uniform",
        channels: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = False,
        mean: float = 0.5,
        std: float = 0.5,
        max_skipped_fraction: float = 0.1,
        input: str = "flow_seq",
        face: str | None = "auto",
        flow: str = "farneback",
        flow_size: int | None = 192,
        flow_scaling: str = "maxabs",
        flow_scale: float = 2.0,
        grayscale: bool | None = True,
        cache_dir: str | None = None,
        augment: Any = None,
    ):
        super().__init__()
        self.root = Path(str(root)).expanduser()
        self.reader, self.name, self.classes_option = reader, name, classes
        if grayscale is None:  # configs that only state `channels`: 3 means RGB frames
            grayscale = channels != 3 or input == "flow"
        # stored inputs (data=precomputed) have the channels of their files, which the config states
        stored_channels = channels if input == "stored" else None
        self.preprocessing = Preprocessing(input=input, face=str(face or "none").lower(), frames=frames,
                                           num_frames=num_frames, image_size=image_size,
                                           channels=1 if grayscale else 3, flow=flow,
                                           flow_size=int(flow_size) if flow_size else None,
                                           flow_scaling=flow_scaling, flow_scale=float(flow_scale),
                                           stored_channels=stored_channels)
        # the clip shape (T, C, H, W), as the preprocessing makes it
        self.num_frames, self.channels, self.image_size = self.preprocessing.shape[:3]
        if channels is not None and int(channels) != self.channels:
            raise MERError(f"data.channels={channels} does not match data.input={input} with data.grayscale="
                           f"{str(bool(grayscale)).lower()}, which gives {self.channels} channel(s) (flow: u, v, "
                           "strain). Let the config derive it: `channels: ${input_channels:${data.input},"
                           "${data.grayscale}}`.")
        self.cache_dir = cache_dir
        self.train_transform = clip_augment(augment, input)  # built now: a bad config fails early
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.mean, self.std = mean, std
        self.max_skipped_fraction = max_skipped_fraction
        self.table: SampleTable | None = None
        self.clips: np.ndarray | None = None
        self.cache_report: CacheReport | None = None
        self.fold: Fold | None = None

    # -- reading -----------------------------------------------------------------------------
    def read(self) -> SampleTable:
        """The dataset's SampleTable with labels (no decoding)."""
        table = check_sample_ids(self.reader(self.root))
        return apply_scheme(table, self.classes_option)

    def fit_inputs(self, table: SampleTable) -> SampleTable:
        """Before preprocessing (`load`; `inspect` reads without it): skip, naming each file, the samples
        `Preprocessing.unfit` refuses (a stored file under a computed input, a stored input of another
        shape, a folder of frames under `input=stored`); when it refuses them all, one
        MERError saying what the files hold and which key to change (a model that needs a sequence on
        one-step files lands here: data.num_frames is its T)."""
        prep = self.preprocessing
        problems = [(sample, prep.unfit(sample)) for sample in table]
        unfit = [(sample, problem) for sample, problem in problems if problem]
        if not unfit:
            return table
        if len(unfit) == len(problems):
            raise MERError(self._nothing_fits([sample for sample, _ in unfit], unfit[0][1]))
        for sample, problem in unfit:
            table.skip(sample.id, problem)
        table.samples = [sample for sample, problem in problems if not problem]
        return table

    def _nothing_fits(self, samples: list, first: str) -> str:
        prep = self.preprocessing
        stored = [s for s in samples if s.stored is not None]
        if prep.input != "stored" or len(stored) < len(samples):
            return f"no sample of {self.root} fits data.input={prep.input}: {first}"
        shapes = Counter(s.stored.shape[:2] for s in stored)
        example = {}
        for s in stored:
            example.setdefault(s.stored.shape[:2], s.stored.path)
        held = ", ".join(f"T={t} x C={c} ({n} file(s), e.g. {example[t, c]})" for (t, c), n in shapes.most_common(3))
        (steps, channels), _ = shapes.most_common(1)[0]
        fixes = []
        if steps != prep.time_steps:
            fixes.append(f"data.num_frames={steps}" if steps > 1 else
                         "data.num_frames=1, which the one-step models set (model=cnn, ststnet, linear; model=timm with "
                         "model/head=mean data.num_frames=1): a model that needs a sequence cannot learn from one step")
        if channels != prep.out_channels:
            fixes.append(f"data.reader.channels={channels}")
        return (f"the stored inputs in {self.root} hold {held}, and the data config asks for T={prep.time_steps} "
                f"(data.num_frames) x C={prep.out_channels} (data.reader.channels): use {' and '.join(fixes)}")

    def load(self) -> SampleTable:
        """Read and label the table, then get every clip's array from the cache (built on first use).

        Samples that cannot be preprocessed (undecodable frame, no face) are removed from the
        table and listed in `table.skipped` with the reason; `data.max_skipped_fraction` caps them.
        """
        if self.table is not None:
            return self.table
        table = self.fit_inputs(self.read())
        prepared = self.preprocessed(table)
        self.cache_report = prepared.report
        self.table = SampleTable([table[i] for i in prepared.kept], table.classes,
                                 [*table.skipped, *prepared.skipped], table.notes)
        self._check_skipped()
        if not len(self.table):
            raise MERError(f"no usable samples in {self.root} for data.classes={self.classes_option}")
        self.clips = prepared.clips
        for skip in self.table.skipped:
            log.warning("Skipped %s: %s", skip.sample, skip.reason)
        for line in prepared.report.summary().splitlines()[:2]:  # where, what was done (skips: above)
            log.info("%s", line.strip())
        if self.preprocessing.input == "stored" and self.clips.size:
            low, high = float(np.min(self.clips)), float(np.max(self.clips))
            if low < -1e-3 or high > 1 + 1e-3:
                log.warning("The stored inputs hold values from %.4g to %.4g, served as they are (then normalised by "
                            "data.mean / data.std); data.reader.scale=<the largest value> or minmax scales them into "
                            "[0, 1]", low, high)
        log.info("faces: %s", self.face_summary(table))
        log.info("%s: %d samples, %d subjects, classes %s", self.name, len(self.table),
                 len(self.table.subjects), self.table.class_counts())
        return self.table

    def face_summary(self, table: SampleTable) -> str:
        """Which face handling the clips got (the log says it: `data.face=auto` decides per layout)."""
        prep = self.preprocessing
        if prep.input == "stored":
            return "stored inputs, served as they are (no face detection)"
        wanted = sum(prep.wants_face(s) for s in table)
        if prep.face == "none" or not wanted:
            why = "the frames are face crops" if prep.face == "auto" else "data.face=none"
            return f"whole frames, no face detection ({why})"
        rest = len(table) - wanted
        note = f"; {rest} clip(s) already face crops, used whole" if rest else ""
        why = " (data.face=auto: full frames)" if prep.face == "auto" else ""
        return f"dlib face crop of the onset frame on {wanted} clip(s){why}{note}"

    def clip_cache(self) -> ClipCache:
        """The cache of this dataset's preprocessed arrays (`cache_dir: null`: in memory)."""
        name = (self.name or "data") + ("" if self.root.name in ("", self.name) else f"-{self.root.name}")
        return ClipCache(self.cache_dir, self.preprocessing, self.root, dataset=name)

    def preprocessed(self, table: SampleTable) -> Prepared:
        """The arrays of the table's samples, from the cache or built (and cached) now."""
        return self.clip_cache().get(table.samples)

    def _check_skipped(self) -> None:
        total = len(self.table) + len(self.table.skipped)
        fraction = len(self.table.skipped) / max(total, 1)
        if fraction > self.max_skipped_fraction:
            shown = "; ".join(f"{s.sample}: {s.reason}" for s in self.table.skipped[:3])
            raise MERError(f"{len(self.table.skipped)} of {total} samples in {self.root} could not be used "
                           f"({fraction:.0%} > data.max_skipped_fraction={self.max_skipped_fraction}). "
                           f"First: {shown}")

    @property
    def class_names(self) -> list[str]:
        return self.load().classes

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # -- folds --------------------------------------------------------------------------------
    def set_fold(self, fold: Fold) -> None:
        self.fold = fold

    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency weights over the fold's training samples ('balanced')."""
        labels = self.table.labels[self.fold.train]
        counts = np.bincount(labels, minlength=self.num_classes).astype(np.float64)
        weights = len(labels) / (self.num_classes * np.maximum(counts, 1))
        return torch.tensor(weights, dtype=torch.float32)

    def _loader(self, indices: list[int], shuffle: bool, augment: bool = False) -> DataLoader:
        if self.fold is None:
            raise RuntimeError("set_fold() must be called before asking for loaders")
        transform = self.train_transform if augment else None  # val / test are never augmented
        data = ClipDataset(self.clips, self.table.labels, indices, self.mean, self.std, transform=transform)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0,
                          collate_fn=collate_clips)

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.fold.train, shuffle=True, augment=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.fold.val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.fold.test, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class LongVideoData(MERDataModule):
    """A long-video dataset (`conf/data/cas2.yaml`, `samm_lv`, `casme3_lv`, `synthetic_lv`).

    Its reader returns a `VideoTable` (`videos()`: what spotting works on). The shared data keys
    (`conf/_data.yaml`) describe how an interval becomes a recognition clip, as for every dataset:
    `read()` gives the labelled micro-expression intervals as clips with their classes
    (`data.classes`), so the recognition path (`mer-train data=cas2`, and the spot-then-recognise
    recogniser) trains on them unchanged.
    """

    _videos: VideoTable | None = None

    def videos(self) -> VideoTable:
        """The dataset's videos (read once), names checked; `data.max_skipped_fraction` caps the rows skipped."""
        if self._videos is None:
            table = self.reader(self.root)
            if not isinstance(table, VideoTable):
                raise MERError(f"data.reader ({getattr(self.reader, 'func', self.reader)}) reads clips, not long videos: "
                               "spotting needs a long-video dataset (data=cas2, samm_lv, casme3_lv or synthetic_lv)")
            table = check_video_ids(table)
            rows = sum(len(v.intervals) for v in table)
            fraction = len(table.skipped) / max(rows + len(table.skipped), 1)
            if fraction > self.max_skipped_fraction:
                shown = "; ".join(f"{s.sample}: {s.reason}" for s in table.skipped[:3])
                raise MERError(f"{len(table.skipped)} of {rows + len(table.skipped)} annotated intervals or videos in "
                               f"{self.root} could not be used ({fraction:.0%} > data.max_skipped_fraction="
                               f"{self.max_skipped_fraction}). First: {shown}")
            if not len(table):
                raise MERError(f"no usable long videos in {self.root}")
            self._videos = table
        return self._videos

    def read(self) -> SampleTable:
        """The labelled micro-expression intervals as clips, with labels (no decoding)."""
        videos = self.videos()
        clips = interval_clips(videos)
        clips.notes.update(videos.notes)
        if videos.skipped:  # the sheet rows and videos left out are the videos' own (checked, listed by inspect)
            clips.notes["video_rows_skipped"] = len(videos.skipped)
        return apply_scheme(check_sample_ids(clips), self.classes_option)
