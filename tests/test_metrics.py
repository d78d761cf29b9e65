"""Metrics are torchmetrics' and agree with scikit-learn on the same predictions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from mer_lightning.evaluation.metrics import summarize


@pytest.mark.parametrize("seed", range(5))
def test_summary_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
    got = summarize(y, p, 4)
    assert got["uf1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    assert got["uar"] == pytest.approx(recall_score(y, p, average="macro"), abs=1e-6)
    assert got["acc"] == pytest.approx(accuracy_score(y, p), abs=1e-6)
    assert np.array_equal(got["confusion"], confusion_matrix(y, p, labels=range(4)))
