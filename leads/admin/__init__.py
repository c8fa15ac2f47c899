"""The admin of ``leads``, one module per concept; importing them registers their pages."""

from . import company_duplicates, deals, duplicates, handoff, intake, lead, records, reps  # noqa: F401
