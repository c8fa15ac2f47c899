"""The CRM's data: companies, leads and their stages, activities, deals, tasks and notes,
one module per concept; the hand-off's and the tracking endpoint's models live in
``leads.handoff_models`` and ``leads.tracking_models``, imported here so that they are
part of this app too."""

from ..custom_fields import CustomFieldDefinition, FieldType
from .activity import INBOUND_TYPES, SALES_TOUCH_TYPES, Activity, ActivityQuerySet, ActivityType
from .company import Company, Industry
from .company_duplicate import (
    CompanyDomainKey,
    CompanyDuplicatePair,
    CompanyMatchKey,
    CompanyNameWord,
)
from .company_merge import CompanyAlias, CompanyMerge
from .deal import (
    DEFAULT_CURRENCY,
    Deal,
    DealBoardTotal,
    DealOutcome,
    DealStage,
    DealStatus,
    LostReason,
)
from .duplicate import (
    DuplicatePair,
    DuplicateSettings,
    LeadMatchKey,
    PairStatus,
)
from .export_job import EXPORT_ATTEMPTS_MAX, ExportJob, ExportStatus
from .lead import (
    CLOSED_STAGES,
    SCORE_COLUMNS,
    Lead,
    LeadQuerySet,
    NameSortKey,
    normalize_email,
    owner_visibility,
)
from .lead_choices import (
    Authority,
    Band,
    Budget,
    Department,
    EmailStatus,
    Grade,
    Need,
    Quadrant,
    Seniority,
    Source,
    Timeline,
)
from .lead_rank import LeadRank
from .merge import LeadAlias, LeadMerge
from .note import Note
from .product_line import ProductLine
from .queue_deferral import DeferralReason, QueueDeferral
from .stage import (
    ALLOWED_TRANSITIONS,
    FUNNEL,
    FUNNEL_STEP,
    Stage,
    StageChange,
    StageTransitionError,
    funnel_step,
    furthest_step_of,
)
from .task import Task, TaskKind, TaskQuerySet
from .web_form import (
    FORM_LEAD_FIELDS,
    FORM_RESERVED_NAMES,
    WebForm,
    default_field_mapping,
    field_mapping_errors,
    is_origin,
    new_form_key,
    normalize_origin,
)

# After the models above, which these import.
# isort: split
from ..handoff_models import AssignmentRule, HandOff, LeadRating, Notification
from ..tracking_models import (
    IdentityKind,
    PendingEvent,
    TrackedEvent,
    TrackingIdentity,
    TrackingKey,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CLOSED_STAGES",
    "DEFAULT_CURRENCY",
    "EXPORT_ATTEMPTS_MAX",
    "FORM_LEAD_FIELDS",
    "FORM_RESERVED_NAMES",
    "FUNNEL",
    "FUNNEL_STEP",
    "INBOUND_TYPES",
    "SALES_TOUCH_TYPES",
    "SCORE_COLUMNS",
    "Activity",
    "ActivityQuerySet",
    "ActivityType",
    "AssignmentRule",
    "Authority",
    "Band",
    "Budget",
    "Company",
    "CompanyAlias",
    "CompanyDomainKey",
    "CompanyDuplicatePair",
    "CompanyMatchKey",
    "CompanyMerge",
    "CompanyNameWord",
    "CustomFieldDefinition",
    "Deal",
    "DealBoardTotal",
    "DealOutcome",
    "DealStage",
    "DealStatus",
    "DeferralReason",
    "Department",
    "DuplicatePair",
    "DuplicateSettings",
    "EmailStatus",
    "ExportJob",
    "ExportStatus",
    "FieldType",
    "Grade",
    "HandOff",
    "IdentityKind",
    "Industry",
    "Lead",
    "LeadAlias",
    "LeadMatchKey",
    "LeadMerge",
    "LeadQuerySet",
    "LeadRank",
    "LeadRating",
    "LostReason",
    "NameSortKey",
    "Need",
    "Note",
    "Notification",
    "PairStatus",
    "PendingEvent",
    "ProductLine",
    "Quadrant",
    "QueueDeferral",
    "Seniority",
    "Source",
    "Stage",
    "StageChange",
    "StageTransitionError",
    "Task",
    "TaskKind",
    "TaskQuerySet",
    "Timeline",
    "TrackedEvent",
    "TrackingIdentity",
    "TrackingKey",
    "WebForm",
    "default_field_mapping",
    "field_mapping_errors",
    "funnel_step",
    "furthest_step_of",
    "is_origin",
    "new_form_key",
    "normalize_email",
    "normalize_origin",
    "owner_visibility",
]
