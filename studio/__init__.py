"""The marketer's scoring studio: scoring models with their rules as sentences, edited
in place; draft versions previewed against the live version on the same leads; publish,
roll back and the version history.

An edge over the domain apps, like ``workspace``: every change goes through
``scoring.changes`` (as in the admin and the REST API), every figure comes from
``scoring.version_preview`` and ``scoring.selectors``, and ``scoring.permissions`` says who may
use it (marketers and admins).
"""
