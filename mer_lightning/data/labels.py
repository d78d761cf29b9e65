"""Label schemes: a dataset's emotion strings -> the classes of an experiment.

A scheme is a list of class names and, per class, the emotion strings that map to it (matched
case-insensitively, so SAMM's `Other` and CASME II's `others` are both understood). An alias may be
qualified by the sample's source dataset (`samm:fear`) where datasets disagree: MEGC 2019 counts
SAMM's fear and sadness as negative but drops CASME II's. Samples whose emotion is outside the
scheme are dropped and counted, never silently relabelled.
"""

from __future__ import annotations

import logging
from collections import Counter

from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import MERError

log = logging.getLogger(__name__)

SCHEMES: dict[str, dict[str, list[str]]] = {
    # CASME II 5-class (246-247 clips)
    "casme2_5": {
        "happiness": ["happiness"], "disgust": ["disgust"], "repression": ["repression"],
        "surprise": ["surprise"], "others": ["others", "other"],
    },
    # SAMM 5-class (136 clips)
    "samm_5": {
        "anger": ["anger"], "contempt": ["contempt"], "happiness": ["happiness"],
        "surprise": ["surprise"], "other": ["other", "others"],
    },
    # MEGC 2019 composite, 3 classes (CASME II fear / sadness / others and SAMM Other are dropped)
    "megc_3": {
        "negative": ["negative", "anger", "contempt", "disgust", "repression", "samm:fear", "samm:sadness",
                     "dfme:fear", "dfme:sadness", "casme3:fear", "casme3:sad"],
        "positive": ["positive", "happiness", "casme3:happy"],
        "surprise": ["surprise"],
    },
    # 4DME's five categories (a clip labelled with several is handled by the reader's `multi_label`)
    "4dme_5": {
        "positive": ["positive"], "negative": ["negative"], "surprise": ["surprise"],
        "repression": ["repression"], "others": ["others", "other"],
    },
    # 4DME 3-class (positive, negative, surprise; repression and others dropped), as DAD-Net's LOSO configs
    "4dme_3": {"negative": ["negative"], "positive": ["positive"], "surprise": ["surprise"]},
    # DFME's 7 classes (the reader spells happy -> happiness, sad -> sadness; `others` is dropped)
    "dfme_7": {
        "happiness": ["happiness", "happy"], "sadness": ["sadness", "sad"], "anger": ["anger"],
        "contempt": ["contempt"], "fear": ["fear"], "disgust": ["disgust"], "surprise": ["surprise"],
    },
    # CAS(ME)^3 part A, 7 emotions (860 clips; `Others` is read as others)
    "casme3_7": {
        "happy": ["happy", "happiness"], "disgust": ["disgust"], "fear": ["fear"], "anger": ["anger"],
        "sad": ["sad", "sadness"], "surprise": ["surprise"], "others": ["others", "other"],
    },
    # CAS(ME)^3 4-class (papers): negative = anger, disgust, fear, sad; part C's own labels fit it too
    "casme3_4": {
        "negative": ["negative", "anger", "disgust", "fear", "sad", "sadness"],
        "positive": ["positive", "happy", "happiness"], "surprise": ["surprise"], "others": ["others", "other"],
    },
    # CAS(ME)^3 3-class (FED-PsyAU): happy -> positive; disgust, fear, anger, sad -> negative; others dropped
    # (`megc_3` maps CAS(ME)^3 the same way through its `casme3:` aliases; this one also on data=synthetic)
    "casme3_3": {
        "negative": ["negative", "anger", "disgust", "fear", "sad", "sadness"],
        "positive": ["positive", "happy", "happiness"], "surprise": ["surprise"],
    },
    # CASME (first version) 4-class as in the literature: tense and repression are others
    "casme_4": {
        "positive": ["amusement", "happiness"], "negative": ["disgust", "sadness", "fear", "contempt"],
        "surprise": ["surprise"], "others": ["tense", "repression", "others"],
    },
    # MMEW, its 7 categories (the sheet's others = the folder repression)
    "mmew_7": {
        "happiness": ["happiness"], "surprise": ["surprise"], "disgust": ["disgust"], "fear": ["fear"],
        "sadness": ["sadness"], "anger": ["anger"], "others": ["others", "repression"],
    },
    # FER-2013, canonical CSV order 0..6
    "fer_7": {
        "angry": ["angry", "anger"], "disgust": ["disgust"], "fear": ["fear"], "happy": ["happy", "happiness"],
        "sad": ["sad", "sadness"], "surprise": ["surprise"], "neutral": ["neutral"],
    },
}
ALL = "all"


def scheme_lookup(scheme: str | list[str], emotions) -> tuple[list[str], dict[str, int]]:
    """The classes of `scheme` and the lookup of its aliases (lower case, `source:emotion` or `emotion`) to
    class indices; `emotions`: the emotions present (what `all` makes its classes of). A MERError for an
    unknown scheme or one with fewer than two classes."""
    if isinstance(scheme, str) and scheme == ALL:
        mapping = {e: [e] for e in sorted({str(e).lower() for e in emotions})}
    elif isinstance(scheme, str):
        if scheme not in SCHEMES:
            raise MERError(f"unknown label scheme data.classes={scheme}; known: {sorted(SCHEMES) + [ALL]}, "
                           "or a list of emotion names")
        mapping = SCHEMES[scheme]
    else:
        mapping = {str(e).lower(): [str(e).lower()] for e in scheme}
    classes = list(mapping)
    if len(classes) < 2:
        raise MERError(f"data.classes={scheme if isinstance(scheme, str) else list(scheme)} gives {len(classes)} "
                       "class(es); a classifier needs at least 2: list two or more emotions "
                       "(data.classes=[happiness,surprise]) or name a scheme, e.g. data.classes=casme2_5")
    return classes, {alias.lower(): i for i, name in enumerate(classes) for alias in mapping[name]}


def class_of(lookup: dict[str, int], emotion: str, source: str = "") -> int | None:
    """The class index of an emotion of a dataset (`source`) under a scheme's lookup, or None."""
    emotion = str(emotion).lower()
    return lookup.get(f"{source}:{emotion}", lookup.get(emotion))


def apply_scheme(table: SampleTable, scheme: str | list[str]) -> SampleTable:
    """Assign `label` to each sample by `scheme`; drop and count samples outside it.

    `scheme` is a name from SCHEMES, `all` (one class per emotion present, sorted), or an explicit
    list of emotion names (each its own class).
    """
    classes, lookup = scheme_lookup(scheme, (s.emotion for s in table))
    kept, dropped = [], Counter()
    for sample in table:
        label = class_of(lookup, sample.emotion, sample.origin)
        if label is None:
            dropped[sample.emotion] += 1
        else:
            kept.append(sample.with_(label=label))
    out = SampleTable(kept, classes, list(table.skipped), dict(table.notes))
    if dropped:
        out.notes["outside_scheme"] = sum(dropped.values())
        out.notes.update({f"outside_scheme/{emotion}": n for emotion, n in sorted(dropped.items())})
        log.info("Dropped %d sample(s) outside the label scheme: %s", sum(dropped.values()), dict(dropped))
    emptied = sorted({s.subject for s in table} - {s.subject for s in kept})
    if emptied:
        out.notes["subjects_without_clips"] = len(emptied)
        log.warning("%d subject(s) have no usable clips under this label scheme and take no part in the "
                    "folds: %s", len(emptied), ", ".join(emptied[:10]) + (" ..." if len(emptied) > 10 else ""))
    for name, n in out.class_counts().items():
        if n == 0:
            log.warning("Class '%s' has no samples after filtering: it is left out of UF1/UAR unless the model "
                        "predicts it, and then its F1 and recall count as 0 (scikit-learn's macro average)", name)
    return out
