"""Celery tasks of the reports app: thin wrappers over its services."""

from __future__ import annotations

from celery import shared_task

from .rollups import rule_matches_count_started, rule_matches_refresh
from .services import digest_send_weekly


@shared_task(ignore_result=True)
def send_weekly_digest() -> int:
    """Beat, Monday morning: last week's key figures to each manager and marketer."""
    return digest_send_weekly()


@shared_task(ignore_result=True)
def refresh_rollups() -> int:
    """Beat nightly, and after every rescore: count again the rule matches Rule
    effectiveness reads; how many."""
    rule_matches_count_started()
    return rule_matches_refresh().rows
