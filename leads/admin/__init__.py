"""The admin of ``leads``, one module per concept; importing them registers their pages."""

from . import (  # noqa: F401
    company_duplicates,
    deals,
    duplicates,
    export_jobs,
    handoff,
    intake,
    lead,
    records,
    reps,
)
