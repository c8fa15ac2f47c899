"""Scoring's models: scoring models and their rules, the score ledger and each lead's
score per model and its nightly snapshots, each company's account score, rescore jobs
and requests, and the change log."""

from .account import AccountScore
from .changelog import ChangeLog
from .ledger import EntryKind, LeadScore, RuleMatch, ScoreEntry
from .predictive import PredictiveModel, PredictiveStatus
from .rescore import ProfileRescore, RescoreJob, RescoreStatus
from .rule import (
    ActivityTarget,
    ConditionJoin,
    DomainList,
    DomainListKind,
    Rule,
    RuleKind,
    WindowMeasure,
)
from .scoring_model import (
    EDITABLE_FIELDS,
    DecisionBasis,
    ModelStatus,
    ScoringModel,
    ScoringModelQuerySet,
)
from .snapshot import ScoreSnapshot

__all__ = [
    "EDITABLE_FIELDS",
    "AccountScore",
    "ActivityTarget",
    "ChangeLog",
    "ConditionJoin",
    "DecisionBasis",
    "DomainList",
    "DomainListKind",
    "EntryKind",
    "LeadScore",
    "ModelStatus",
    "PredictiveModel",
    "PredictiveStatus",
    "ProfileRescore",
    "RescoreJob",
    "RescoreStatus",
    "Rule",
    "RuleKind",
    "RuleMatch",
    "ScoreEntry",
    "ScoreSnapshot",
    "ScoringModel",
    "ScoringModelQuerySet",
    "WindowMeasure",
]
