"""Subject-independent folds, and the leak guard that every fold passes before it trains.

A fold is train / val / test index lists over a SampleTable, identified by its held-out test
subjects. The validation part is always carved out of the fold's *training* subjects, so model
selection (early stopping, best checkpoint) never sees the test subject.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mer_lightning.data.samples import SampleTable
from mer_lightning.utils.errors import LeakError, MERError
from mer_lightning.utils.instantiate import check_keys


@dataclass
class Fold:
    index: int
    train: list[int]
    val: list[int]
    test: list[int]
    test_subjects: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        shown = ",".join(self.test_subjects[:3]) + ("..." if len(self.test_subjects) > 3 else "")
        return f"fold {self.index} (test: {shown})"


def fold_seed(seed: int, index: int) -> int:
    """The seed of fold `index` of a run seeded `seed`: independent streams for every (seed, fold)
    (with `seed + index`, fold k+1 of seed s would repeat fold k of seed s+1)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _is_list(value) -> bool:
    return not isinstance(value, (str, bytes)) and hasattr(value, "__iter__")


def check_subject_option(key: str, value, subjects: list[str]) -> None:
    """`protocol.val_subjects` / `protocol.test_subjects`: a fraction, a count or a list of existing
    subject ids; anything else is a MERError naming the key and the fix."""
    if value is None:
        return
    if _is_list(value):
        unknown = sorted({str(s) for s in value} - set(subjects))
        if unknown:
            shown = ", ".join(subjects[:12]) + (" ..." if len(subjects) > 12 else "")
            raise MERError(f"protocol.{key}: {unknown} not among this dataset's subjects ({shown}); "
                           "spell them as the table does (`python -m mer_lightning.inspect_data` lists them)")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise MERError(f"protocol.{key}={value}: give a fraction of the subjects (0.2), a count (2) or a list "
                       "of subject ids ([sub01,sub02])")


def pick_subjects(subjects: list[str], amount, rng: np.random.Generator, key: str = "val_subjects") -> list[str]:
    """Subjects drawn from `subjects` (validation subjects from the training ones, or holdout's test
    subjects, per `key`): a count, a fraction or an explicit list."""
    if amount is None or amount == 0:
        return []
    if _is_list(amount):
        wanted = [str(s) for s in amount]
        return [s for s in subjects if s in wanted]
    check_subject_option(key, amount, subjects)
    value = float(amount)
    n = int(value) if value >= 1 else max(1, int(round(value * len(subjects))))
    if n >= len(subjects):
        raise MERError(f"protocol.{key}={amount} leaves no training subject (only {len(subjects)} available)")
    return sorted(rng.permutation(subjects)[:n].tolist())


def _fold(table: SampleTable, index: int, test_subjects: list[str], train_pool: list[str],
          val_subjects, seed: int) -> Fold:
    rng = np.random.default_rng(fold_seed(seed, index))
    val = pick_subjects(sorted(set(train_pool) - set(test_subjects)), val_subjects, rng)
    train = sorted(set(train_pool) - set(test_subjects) - set(val))
    return Fold(index, table.where_subjects(train), table.where_subjects(val),
                table.where_subjects(test_subjects), sorted(str(s) for s in test_subjects))


def loso(table: SampleTable, val_subjects=0.2, seed: int = 0) -> list[Fold]:
    """Leave one subject out: one fold per subject."""
    subjects = table.subjects
    if len(subjects) < 3:
        raise MERError(f"LOSO needs at least 3 subjects; the table has {len(subjects)}")
    return [_fold(table, i, [s], subjects, val_subjects, seed) for i, s in enumerate(subjects)]


def subject_kfold(table: SampleTable, k: int = 5, val_subjects=0.2, seed: int = 0) -> list[Fold]:
    """k folds of whole subjects, stratified by class where the subjects allow it."""
    from sklearn.model_selection import StratifiedGroupKFold

    subjects = table.subjects
    if not 2 <= k <= len(subjects):
        raise MERError(f"protocol.k={k} must be between 2 and the number of subjects ({len(subjects)})")
    groups = np.array([s.subject for s in table])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for i, (_, test_idx) in enumerate(splitter.split(np.zeros(len(table)), table.labels, groups)):
        folds.append(_fold(table, i, sorted(set(groups[test_idx])), subjects, val_subjects, seed))
    return folds


def holdout(table: SampleTable, test_subjects=0.2, val_subjects=0.2, seed: int = 0) -> list[Fold]:
    """One fixed split. Tables with official parts (FER-2013's Usage) use them; others split by subject.

    An official split without a validation part (FER-2013's folder release) gets one carved out of
    its training images: `val_subjects` as a fraction or count of them, drawn per class (seeded).
    """
    splits = {s.split for s in table}
    if splits >= {"train", "test"}:
        part = {name: [i for i, s in enumerate(table) if s.split == name] for name in ("train", "val", "test")}
        if not part["val"] and val_subjects:
            part["train"], part["val"] = _carve_images(table, part["train"], val_subjects, seed)
        return [Fold(0, part["train"], part["val"], part["test"], [OFFICIAL_TEST])]
    subjects = table.subjects
    rng = np.random.default_rng(seed)
    test = pick_subjects(subjects, test_subjects, rng, key="test_subjects")
    if not test:
        raise MERError("protocol.test_subjects must select at least one subject")
    return [_fold(table, 0, test, subjects, val_subjects, seed)]


def _carve_images(table: SampleTable, train: list[int], amount, seed: int) -> tuple[list[int], list[int]]:
    """Split training images (no subjects) into train and validation, the same fraction of each class."""
    if isinstance(amount, (list, tuple)) or not isinstance(amount, (int, float)):
        raise MERError("protocol.val_subjects must be a fraction or a count for a dataset without subjects")
    fraction = amount if amount < 1 else amount / max(len(train), 1)
    rng = np.random.default_rng(seed)
    val = []
    labels = table.labels
    for label in sorted({int(labels[i]) for i in train}):
        members = [i for i in train if labels[i] == label]
        n = int(round(fraction * len(members)))
        val += rng.permutation(members)[:n].tolist()
    chosen = set(val)
    return [i for i in train if i not in chosen], sorted(val)


def cross_dataset(table: SampleTable, train_on: str | list[str], test_on: str | list[str], val_subjects=0.2,
                  seed: int = 0) -> list[Fold]:
    """Train on one or more source datasets, test on others (e.g. CASME II -> SAMM, [SAMM, CASME II] -> 4DME).

    `train_on` / `test_on`: a source name or a list of them (the composite's `data.reader.sources`).
    """
    origins = {s.origin for s in table}
    train_names = [train_on] if isinstance(train_on, str) else [str(n) for n in train_on]
    test_names = [test_on] if isinstance(test_on, str) else [str(n) for n in test_on]
    for name in (*train_names, *test_names):
        if name not in origins:
            raise MERError(f"cross_dataset: source '{name}' is not in the data (sources: {sorted(origins)}); "
                           "use data=composite to load several datasets (data.reader.sources=[...])")
    both = sorted(set(train_names) & set(test_names))
    if both or not train_names or not test_names:
        raise MERError(f"cross_dataset: protocol.train_on={train_names} and protocol.test_on={test_names} must be "
                       f"non-empty and disjoint (both name {both})")
    source = sorted({s.subject for s in table if s.origin in train_names})
    target = sorted({s.subject for s in table if s.origin in test_names})
    return [_fold(table, 0, target, source, val_subjects, seed)]


OFFICIAL_TEST = "<official test split>"
SUBJECT_PROTOCOLS = ("loso", "subject_kfold", "cross_dataset")
PROTOCOLS = {"loso": loso, "subject_kfold": subject_kfold, "holdout": holdout, "cross_dataset": cross_dataset}


def make_folds(table: SampleTable, name: str, **options) -> list[Fold]:
    """The folds of protocol `name` over `table`, each checked by the leak guard.

    `options` are the protocol's keys (`protocol.val_subjects`, ...) and `seed`; a key the protocol
    does not take is a MERError naming it.
    """
    if name not in PROTOCOLS:
        raise MERError(f"unknown protocol '{name}'; known: {sorted(PROTOCOLS)}")
    protocol = PROTOCOLS[name]
    own = [p for p in inspect.signature(protocol).parameters if p not in ("table", "seed")]
    check_keys(protocol, options, "protocol", shown_known=own)
    for key in ("val_subjects", "test_subjects"):
        if table.subjects or _is_list(options.get(key)):
            check_subject_option(key, options.get(key), table.subjects)
    if name in SUBJECT_PROTOCOLS and any(s.subject == "" for s in table):
        dataset = next(s.dataset for s in table if s.subject == "")
        raise MERError(f"protocol={name} needs subject ids, and {dataset} has none (its images carry no "
                       "identity); subjects are not invented here. Use protocol=holdout (its official parts).")
    folds = protocol(table, **options)
    for fold in folds:
        check_fold(table, fold)
    if name in ("loso", "subject_kfold"):
        check_covers(table, folds)
    return folds


def check_fold(table: SampleTable, fold: Fold) -> None:
    """The leak guard: no sample, clip or subject on two sides of a fold. Raises LeakError."""
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    if not fold.train or not fold.test:
        raise LeakError(f"{fold.name}: empty train or test part")
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for what, key in (("sample", lambda s: id(s)), ("clip", lambda s: s.id), ("subject", lambda s: s.subject)):
                left = {key(table[j]) for j in parts[a]}
                right = {key(table[j]) for j in parts[b]}
                both = left & right
                if both and not (what == "subject" and _official_split(table, parts[a] + parts[b])):
                    shown = sorted(map(str, both))[:5]
                    raise LeakError(f"{fold.name}: {len(both)} {what}(s) in both {a} and {b}, e.g. {shown}. "
                                    "A result from this split could not be trusted; the run stops here.")


def _official_split(table: SampleTable, indices: list[int]) -> bool:
    """FER-2013 has no subjects: its official parts are the only split it offers."""
    return all(table[i].subject == "" for i in indices)


def check_covers(table: SampleTable, folds: list[Fold]) -> None:
    """Over a LOSO / k-fold protocol every sample is tested exactly once."""
    tested = Counter(i for fold in folds for i in fold.test)
    wrong = [table[i].id for i in range(len(table)) if tested.get(i, 0) != 1]
    if wrong:
        raise LeakError(f"{len(wrong)} sample(s) are not tested exactly once over the folds, e.g. {wrong[:5]}")
