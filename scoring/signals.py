"""Facts the scoring engine announces; ``nurturing`` and scoring's own surge alert
(``scoring.alerts``) subscribe to them.

Each is sent once, after the transaction that scored the lead has committed, so
receivers see the new score in the database.

``lead_qualified(sender=ScoringModel, lead_id, model_id, stage, score)``
    The score crossed the model's MQL or SQL threshold upward and the lead moved
    to ``stage``.
``band_changed(sender=ScoringModel, lead_id, model_id, old_band, new_band, score)``
    The lead's primary band changed (hot / warm / cold), by scoring that lead (real-time
    scoring, a rescore in chunks off PostgreSQL, the predictive model's refresh).
``bands_changed(sender=ScoringModel, model_id, changes)``
    The primary bands of many leads changed at once, by a set-based rescore or the
    nightly decay: ``changes`` lists (lead_id, old_band, new_band, score), each lead
    once; sent once for each range and model, so a receiver can queue one task for
    all of them.
``score_surged(sender=ScoringModel, lead_id, model_id, points, hours)``
    The lead earned new points and has at least the model's surge points within its
    surge hours; sent at most once per surge window, by real-time scoring or a rescore.
``rescore_finished(sender=ScoringModel, job_id, model_id)``
    A rescore job of the model finished: what it changed is in the ledger (the reports
    rebuild their rule matches).
"""

from django.dispatch import Signal

lead_qualified = Signal()
band_changed = Signal()
bands_changed = Signal()
score_surged = Signal()
rescore_finished = Signal()
