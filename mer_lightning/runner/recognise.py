"""Spot-then-recognise (MEGC 2023-2025): per fold, a recogniser trained on the training subjects' labelled
micro-expression intervals (as clips, through the recognition path: `LongVideoData.read()`, the data's
preprocessing and cache, `models.factory.build_model` and the runner's `fit`) classifies every micro
interval spotted in the fold's test videos.

The recogniser of a fold trains on every training subject's labelled micro-expressions (the data's
`classes`: megc_3 by default, so `others` is left out) for `trainer.max_epochs` epochs and its last
epoch is used (`runner.selection=last`: a budget fixed before any subject is seen; the test subjects
take no part). A spotted interval becomes a clip from its start to its end with its peak as the apex;
it is preprocessed as a labelled clip is (the face found on its first frame, flow at face resolution).
A spotted interval whose frames cannot be read gets no emotion (it then counts as misclassified if it
matches a ground truth).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from mer_lightning.data.clips import BadFrame
from mer_lightning.data.splits import Fold
from mer_lightning.data.videos import Interval, Video, interval_clips
from mer_lightning.runner.fold import close, fit
from mer_lightning.spotting.peaks import Spot
from mer_lightning.vision.face import FaceNotFound

log = logging.getLogger(__name__)


def recogniser_fold(data, fold: Fold, videos: list[Video]) -> Fold:
    """The recognition fold of a spotting fold: train on the clips of its training subjects (validation
    subjects included: nothing is selected on them), test on the clips of its test subjects."""
    table = data.load()
    training = sorted({videos[i].subject for i in (*fold.train, *fold.val)})
    return Fold(fold.index, table.where_subjects(training), [], table.where_subjects(fold.test_subjects),
                list(fold.test_subjects))


def recognise(cfg, data, fold: Fold, videos: list[Video], spotted: dict[str, list[Spot]], fold_dir: Path,
              current: dict) -> tuple[dict[tuple[str, int, int], str], dict]:
    """(video id, start, end) -> class name for every spotted micro interval of the fold's test videos, and
    what the recogniser was (its training clips, epochs)."""
    part = recogniser_fold(data, fold, videos)
    if not part.train:
        log.warning("%s: no labelled micro-expression of the training subjects is in data.classes=%s: spotted "
                    "intervals are not classified", fold.name, data.classes_option)
        return {}, {"train_clips": 0}
    epochs = int(cfg.trainer.max_epochs)
    trainer, model, loggers, _ = fit(cfg, data, part, fold_dir / "recogniser", f"fold_{fold.index:02d}_recogniser",
                                     current, stage="final", fold=part, max_epochs=epochs)
    close(loggers)
    test_videos = [videos[i] for i in fold.test]
    wanted = {v.id: [Interval(s.start, s.apex, s.end, "micro") for s in spotted.get(v.id, []) if s.type == "micro"]
              for v in test_videos}
    clips = interval_clips(test_videos, intervals=wanted)
    prep = data.preprocessing
    aligner = prep.make_aligner(clips.samples)
    arrays, keys = [], []
    for sample in clips:
        try:
            arrays.append(prep.process(sample, aligner))
        except (BadFrame, FaceNotFound) as err:
            log.warning("Spotted interval %s cannot be classified: %s", sample.id, err)
            continue
        keys.append((f"{sample.dataset}/{sample.subject}/{sample.clip.rsplit('_', 1)[0]}", sample.onset, sample.offset))
    predicted = {}
    if arrays:
        x = torch.from_numpy(np.stack(arrays).astype(np.float32))
        if arrays[0].dtype == np.uint8:
            x = x / 255.0
        x = (x - data.mean) / data.std
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x[i:i + 64].to(model.device)).cpu() for i in range(0, len(x), 64)])
        names = data.class_names
        predicted = {key: names[int(i)] for key, i in zip(keys, logits.argmax(1))}
    info = {"train_clips": len(part.train), "epochs": epochs, "classes": list(data.class_names),
            "selection": f"last: the last of {epochs} epoch(s) on every training subject's labelled micro-expressions",
            "spotted_micro": sum(len(w) for w in wanted.values()), "classified": len(predicted)}
    return predicted, info
