"""Facts the ``leads`` app announces; higher apps subscribe in ``AppConfig.ready``.

``lead_stage_changed(sender=Lead, lead, change)``
    Sent inside the transaction that moved the lead, right after its
    ``StageChange`` row is written. Receivers that do work outside the database
    must defer it with ``transaction.on_commit``.
"""

from django.dispatch import Signal

lead_stage_changed = Signal()

# ``activity_recorded(sender=Activity, lead_id, activity_ids)``: activities were stored
# for a lead (sent inside the storing transaction; scoring enqueues on commit).
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
