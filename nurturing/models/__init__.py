"""Nurture sequences: timed steps a lead walks through until it is ready for sales.

A ``Sequence`` says who enters and who leaves, its ``Step`` rows what is sent, in order.
An ``Enrollment`` is one lead walking one sequence; each email it sends is one
``Message``. A ``Suppression`` is an address never emailed again; an
``AutoEnrollHold`` a lead the hourly sweep leaves out.
"""

from .enrollments import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    ExitReason,
)
from .holds import AutoEnrollHold
from .messages import Message, MessageStatus
from .sequences import (
    Sequence,
    SequenceStatus,
    default_entry_stages,
    default_exit_stages,
)
from .steps import WEEKDAYS, Step, StepKind, WindowZone
from .suppressions import Suppression, SuppressionReason

__all__ = [
    "WEEKDAYS",
    "AutoEnrollHold",
    "Enrollment",
    "EnrollmentSource",
    "EnrollmentStatus",
    "ExitReason",
    "Message",
    "MessageStatus",
    "Sequence",
    "SequenceStatus",
    "Step",
    "StepKind",
    "Suppression",
    "SuppressionReason",
    "WindowZone",
    "default_entry_stages",
    "default_exit_stages",
]
