"""Fitting a predictive model on encoded closed leads, and judging it: pure, no database.

The leads come in the order of their outcomes (oldest closed first). The newest
``HOLDOUT_SHARE`` are held out; on the rest two candidates are compared by time-ordered
cross-validation (each fold trains on older outcomes and tests on the next newer ones):
an L2-regularized logistic regression on standardized columns, and gradient boosting
(``HistGradientBoostingClassifier``). The better mean ROC AUC is fitted on all the older
outcomes with its probabilities calibrated (Platt scaling, ``CalibratedClassifierCV``),
and measured on the holdout: ROC AUC, Brier score, a calibration table and lift by
decile (``scoring.evaluation``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..evaluation import deciles, lift, roc_auc
from .encoding import Encoding

HOLDOUT_SHARE = 0.25
CV_FOLDS = 3
LOGISTIC, BOOSTING = "logistic", "boosting"
Z95 = 1.96


def candidates() -> dict[str, Any]:
    return {
        LOGISTIC: make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000)),
        BOOSTING: HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.06,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        ),
    }


@dataclass
class Fitted:
    """A trained model and its figures on the holdout."""

    algorithm: str
    estimator: ClassifierMixin
    cv_scores: dict[str, float]
    n_train: int
    holdout: np.ndarray  # row indexes of the held-out leads
    probabilities: np.ndarray  # on the holdout
    reference: np.ndarray  # the average training row, for explanations


def holdout_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the older outcomes and of the newest ``HOLDOUT_SHARE`` (rows in outcome order)."""
    cut = n - max(round(n * HOLDOUT_SHARE), 1)
    return np.arange(cut), np.arange(cut, n)


def fit(x: np.ndarray, y: np.ndarray) -> Fitted:
    """Choose, fit and calibrate on the older outcomes; predict the holdout."""
    train, holdout = holdout_split(len(y))
    with threadpool_limits(limits=1):
        scores = cross_validated(x[train], y[train])
        algorithm = max(scores, key=lambda name: scores[name])
        estimator = CalibratedClassifierCV(candidates()[algorithm], method="sigmoid", cv=3)
        estimator.fit(x[train], y[train])
        probabilities = estimator.predict_proba(x[holdout])[:, 1]
    return Fitted(
        algorithm, estimator, scores, len(train), holdout, probabilities, x[train].mean(axis=0)
    )


def cross_validated(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Each candidate's mean ROC AUC over time-ordered folds (folds with one class skipped)."""
    out = {}
    for name, estimator in candidates().items():
        aucs = []
        for train, test in TimeSeriesSplit(n_splits=CV_FOLDS).split(x):
            if len(set(y[train])) < 2 or len(set(y[test])) < 2:
                continue
            model = clone(estimator).fit(x[train], y[train])
            auc = roc_auc(list(zip(model.predict_proba(x[test])[:, 1], y[test], strict=True)))
            aucs.append(auc or 0.5)
        out[name] = float(np.mean(aucs)) if aucs else 0.5
    return out


def brier(probabilities: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((probabilities - y.astype(float)) ** 2))


def auc_of(probabilities: np.ndarray | list[float], y: np.ndarray) -> float | None:
    return roc_auc(list(zip((float(p) for p in probabilities), (bool(v) for v in y), strict=True)))


def calibration_table(
    probabilities: np.ndarray, y: np.ndarray, tolerance: float
) -> list[dict[str, Any]]:
    """By decile of the predicted chance (highest first): leads, predicted and observed
    conversion, and whether the gap is within ``tolerance`` plus the decile's sampling
    error (1.96 standard errors of the predicted rate)."""
    rows = []
    order = np.argsort(-probabilities, kind="stable")
    for tile, part in enumerate(np.array_split(order, 10)):
        if not len(part):
            continue
        predicted = float(probabilities[part].mean())
        observed = float(y[part].mean())
        allowed = tolerance + Z95 * math.sqrt(predicted * (1 - predicted) / len(part))
        rows.append(
            {
                "decile": 10 - tile,
                "leads": len(part),
                "predicted": round(predicted, 4),
                "observed": round(observed, 4),
                "allowed": round(allowed, 4),
                "ok": abs(observed - predicted) <= allowed,
            }
        )
    return rows


def lift_table(probabilities: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    scored = list(zip((float(p) for p in probabilities), (bool(v) for v in y), strict=True))
    base_won, base_closed = int(y.sum()), len(y)
    return [
        {
            "decile": int(group.label),
            "leads": group.closed,
            "won": group.won,
            "conversion": round(group.conversion or 0.0, 4),
            "lift": round(lift(group.won, group.closed, base_won, base_closed) or 0.0, 3),
        }
        for group in deciles(scored)
    ]


def feature_weights(
    fitted: Fitted, encoding: Encoding, x_holdout: np.ndarray, y_holdout: np.ndarray
) -> list[dict[str, Any]]:
    """The logistic regression: each column's weight (its coefficient per standard
    deviation, averaged over the calibrated folds). Gradient boosting: each raw input's
    importance, the holdout ROC AUC lost when its columns are shuffled together (on
    ``IMPORTANCE_ROWS`` rows at most). Largest first."""
    if fitted.algorithm == LOGISTIC:
        pipelines: list[Pipeline] = [c.estimator for c in fitted.estimator.calibrated_classifiers_]
        values = np.mean([p[-1].coef_[0] for p in pipelines], axis=0)
        rows = [
            {"feature": column.name, "group": column.group, "weight": round(float(value), 4)}
            for column, value in zip(encoding.columns, values, strict=True)
        ]
        return sorted(rows, key=lambda row: -abs(row["weight"]))
    importance = group_importance(fitted.estimator, encoding, x_holdout, y_holdout)
    rows = [
        {"feature": group, "group": group, "importance": round(value, 4)}
        for group, value in importance.items()
    ]
    return sorted(rows, key=lambda row: -abs(row["importance"]))


IMPORTANCE_ROWS = 2000


def group_importance(
    estimator: Any, encoding: Encoding, x: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    rng = np.random.default_rng(0)
    if len(y) > IMPORTANCE_ROWS:
        keep = rng.choice(len(y), IMPORTANCE_ROWS, replace=False)
        x, y = x[keep], y[keep]
    with threadpool_limits(limits=1):
        base = auc_of(estimator.predict_proba(x)[:, 1], y) or 0.5
        out = {}
        for group, cols in encoding.groups().items():
            shuffled = x.copy()
            shuffled[:, cols] = x[rng.permutation(len(y))][:, cols]
            out[group] = base - (auc_of(estimator.predict_proba(shuffled)[:, 1], y) or 0.5)
    return out
