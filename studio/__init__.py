"""The marketer's scoring studio: scoring models with their rules as sentences, edited
in place (every field, the leads a rule matches counted as it is typed); suggested
weights made into a draft; draft versions previewed against the live version on the
same leads; publish, roll back and the version history.

An edge over the domain apps, like ``workspace``: every change goes through
``scoring.changes`` (as in the admin and the REST API), every figure comes from
``scoring.version_preview``, ``scoring.selectors``, ``scoring.rule_count`` and
``scoring.suggestions``, and ``scoring.permissions`` says who may
use it (marketers and admins).
"""
