"""`build_model(model_cfg, data)`: the one place a model config becomes a model (timm's `create_model`).

It gives the model what only the data knows (the classes), checks the data's clip shape against
what the model states before any training (`MERModule.check_input`), and fills in class weights
(`model.class_weights=balanced`: inverse class frequencies of the current fold's training samples).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig

from mer_lightning.models.module import MERModule
from mer_lightning.utils.instantiate import instantiate_strict


@dataclass
class ClipShape:
    """What a model needs to know of the data when there is no DataModule (tests, benchmarks)."""

    num_classes: int
    num_frames: int
    channels: int
    image_size: int
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.class_names = self.class_names or [str(i) for i in range(self.num_classes)]

    @classmethod
    def of(cls, data_cfg: DictConfig, num_classes: int) -> "ClipShape":
        """The clip shape a data config gives, as its preprocessing makes it (the preprocessing owns the
        shape: 1 step for `input=flow` / `diff`, 2 for `frames=onset_apex`, ...)."""
        from mer_lightning.data.preprocessing import Preprocessing

        grayscale = bool(data_cfg.get("grayscale", True))
        steps, channels, size, _ = Preprocessing(input=data_cfg.input, frames=data_cfg.frames,
                                                 num_frames=int(data_cfg.num_frames),
                                                 image_size=int(data_cfg.image_size),
                                                 channels=1 if grayscale else 3).shape
        return cls(num_classes, steps, channels, size)


def build_model(model_cfg: DictConfig, data) -> MERModule:
    """A fresh MERModule for `data`: a MERDataModule (whose fold, if set, gives the class weights) or a
    `ClipShape`."""
    model = instantiate_strict(model_cfg, "model", num_classes=data.num_classes, class_names=data.class_names,
                               _convert_="all")
    model.check_input(data.num_frames, data.channels, data.image_size)
    fold = getattr(data, "fold", None)
    if model_cfg.get("class_weights") == "balanced" and fold is not None and fold.train:
        model.class_weights.copy_(data.class_weights())
    return model
