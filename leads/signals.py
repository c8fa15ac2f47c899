"""Facts the ``leads`` app announces; higher apps subscribe in ``AppConfig.ready``.

``lead_stage_changed(sender=Lead, lead, change)``
    Sent inside the transaction that moved the lead, right after its
    ``StageChange`` row is written. Receivers that do work outside the database
    must defer it with ``transaction.on_commit``.

``activity_recorded(sender=Activity, lead_id, activity_ids, activities)``
    Activities were stored for one lead: ``activities`` are the stored ``Activity``
    objects (ids set, every field as written, in the order they were given) and
    ``activity_ids`` their ids. Sent inside the storing transaction, once per lead of a
    batch, so receivers read what they need from ``activities`` instead of querying
    them back, and defer work outside the database with ``transaction.on_commit``
    (scoring registers one request per transaction, however many leads it stored).
"""

from django.dispatch import Signal

lead_stage_changed = Signal()

activity_recorded = Signal()

# ``lead_profile_changed(sender=Lead, lead_id, fields)``: explicit fields of a lead changed.
lead_profile_changed = Signal()

# ``lead_handed_off(sender=HandOff, handoff)``: a lead reached the hand-off stage and its
# hand-off was assigned (owner chosen, notified, follow-up task created). Sent once per
# hand-off, after the assigning transaction committed.
lead_handed_off = Signal()

# ``handoff_escalated(sender=HandOff, handoff)``: a hand-off passed its SLA without being
# accepted or touched and went to the owner's manager. Sent once, after commit.
handoff_escalated = Signal()
