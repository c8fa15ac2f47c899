"""The reports' reads: set-based aggregate queries returning plain rows (dicts), one
module per report, over the per-lead facts of ``lead_facts``.

Each function takes a ``ReportScope`` and runs a fixed number of queries, whatever the
number of leads: conditional aggregates, correlated ``EXISTS``, window functions
(``NTILE``, ``LAG``, ``ROW_NUMBER``) and percentiles by group. Pages and CSV exports
render the same rows.
"""
