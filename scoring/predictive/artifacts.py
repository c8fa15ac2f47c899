"""A trained pipeline as bytes in ``PredictiveModel.artifact`` and back.

The bytes are a joblib pickle written by ``predictive_train`` on this installation and
read from its own database only, never from an upload: whoever can write that column
can already run code here. A loaded pipeline is kept per process, by the row's id and
creation time (a row's artifact never changes).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import joblib
import numpy as np

from ..models import PredictiveModel
from .encoding import Encoding


@dataclass(frozen=True)
class Artifact:
    encoding: Encoding
    estimator: Any
    reference: np.ndarray


def artifact_bytes(artifact: Artifact) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(artifact, buffer, compress=3)
    return buffer.getvalue()


def artifact_of(predictive: PredictiveModel) -> Artifact:
    return _load(predictive.pk, predictive.created_at)


@lru_cache(maxsize=8)
def _load(pk: int, created_at: datetime) -> Artifact:
    data = PredictiveModel.objects.values_list("artifact", flat=True).get(pk=pk)
    loaded = joblib.load(io.BytesIO(bytes(data)))
    if not isinstance(loaded, Artifact):
        raise TypeError(f"Predictive model {pk}'s artifact is not a trained pipeline.")
    return loaded
