"""One LightningDataModule per dataset, all on the same machinery.

`MERDataModule.prepare()` reads the dataset (reader -> label scheme -> decoded clips) once per
run; the protocol then calls `set_fold(fold)` before each fold's training, and the loaders serve
only that fold's train / val / test samples. Batches are dicts:
`x` float32 (B, T, C, H, W), `y` int64 (B,), `index` int64 (B,) into the SampleTable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mer_lightning.data.clips import BadFrame, frames_for, load_clip
from mer_lightning.data.labels import apply_scheme
from mer_lightning.data.readers import READERS
from mer_lightning.data.samples import SampleTable
from mer_lightning.data.splits import Fold
from mer_lightning.data.synthetic import SyntheticSpec, ensure_synthetic
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)


class ClipDataset(Dataset):
    """Clips already decoded to uint8 (N, T, C, H, W), served as normalised float tensors."""

    def __init__(self, clips: np.ndarray, labels: np.ndarray, indices: list[int], mean: float, std: float,
                 transform=None):
        self.clips, self.labels, self.indices = clips, labels, list(indices)
        self.mean, self.std, self.transform = mean, std, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        clip = self.clips[index]
        if self.transform is not None:
            clip = self.transform(clip)
        x = (torch.from_numpy(np.ascontiguousarray(clip)).float() / 255.0 - self.mean) / self.std
        return {"x": x, "y": int(self.labels[index]), "index": index}


class MERDataModule(pl.LightningDataModule):
    """Shared implementation; subclasses name the dataset and may generate or locate it."""

    dataset = ""

    def __init__(
        self,
        root: str,
        classes: str | list[str] = "all",
        image_size: int = 64,
        num_frames: int = 8,
        frames: str = "uniform",
        channels: int = 1,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        mean: float = 0.5,
        std: float = 0.5,
        max_skipped_fraction: float = 0.1,
        reader: dict | None = None,
        **_: Any,
    ):
        super().__init__()
        self.root = Path(str(root)).expanduser()
        self.classes_option = classes
        self.image_size, self.frames, self.channels = image_size, frames, channels
        self.num_frames = frames_for(frames, num_frames)
        self.requested_frames = num_frames
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.mean, self.std = mean, std
        self.max_skipped_fraction = max_skipped_fraction
        self.reader_options = dict(reader or {})
        self.table: SampleTable | None = None
        self.clips: np.ndarray | None = None
        self.fold: Fold | None = None

    # -- reading -----------------------------------------------------------------------------
    def read(self) -> SampleTable:
        """The dataset's SampleTable with labels (no decoding)."""
        reader = READERS[self.dataset]
        table = reader(self.root, **self.reader_options)
        return apply_scheme(table, self.classes_option)

    def prepare(self) -> SampleTable:
        """Read, label and decode every clip once; broken clips are skipped and reported."""
        if self.table is not None:
            return self.table
        table = self.read()
        clips, keep = [], []
        for i, sample in enumerate(table):
            try:
                clips.append(load_clip(sample, self.frames, self.requested_frames, self.image_size, self.channels))
                keep.append(i)
            except BadFrame as err:
                table.skip(sample.id, str(err))
        self.table = SampleTable([table[i] for i in keep], table.classes, table.skipped, table.notes)
        self._check_skipped()
        if not len(self.table):
            raise MERError(f"no usable samples in {self.root} for data.classes={self.classes_option}")
        self.clips = np.stack(clips)
        for skip in self.table.skipped:
            log.warning("Skipped %s: %s", skip.sample, skip.reason)
        log.info("%s: %d samples, %d subjects, classes %s", self.dataset, len(self.table),
                 len(self.table.subjects), self.table.class_counts())
        return self.table

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
        return self.prepare().classes

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

    def _loader(self, indices: list[int], shuffle: bool) -> DataLoader:
        if self.fold is None:
            raise RuntimeError("set_fold() must be called before asking for loaders")
        data = ClipDataset(self.clips, self.table.labels, indices, self.mean, self.std)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.fold.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.fold.val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.fold.test, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class CASME2DataModule(MERDataModule):
    dataset = "casme2"


class SyntheticDataModule(MERDataModule):
    """The embedded default: generated on first use, read through the CASME II reader."""

    dataset = "casme2"

    def __init__(self, root: str, spec: dict | None = None, **kwargs: Any):
        super().__init__(root, **kwargs)
        self.spec = SyntheticSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in (spec or {}).items()})

    def read(self) -> SampleTable:
        ensure_synthetic(self.root, self.spec)
        table = super().read()
        table.samples = [s.with_(dataset="synthetic") for s in table.samples]
        return table
