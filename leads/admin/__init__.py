"""The admin of ``leads``, one module per concept; importing them registers their pages."""

from . import deals, duplicates, handoff, intake, lead, records, reps  # noqa: F401
