from django.apps import AppConfig


class NurturingConfig(AppConfig):
    name = "nurturing"
    verbose_name = "Nurture sequences"

    def ready(self) -> None:
        from leads.merge_participants import merge_participant_register
        from leads.signals import activity_recorded, lead_stage_changed
        from scoring.signals import band_changed, bands_changed

        from . import tasks  # noqa: F401  (registered: services queue them by name)
        from .lead_merges import ENROLLMENT_PARTICIPANT
        from .receivers import (
            end_on_reply,
            sync_on_band_change,
            sync_on_bands_change,
            sync_on_stage_change,
        )

        band_changed.connect(sync_on_band_change, dispatch_uid="nurturing.band_changed")
        bands_changed.connect(sync_on_bands_change, dispatch_uid="nurturing.bands_changed")
        lead_stage_changed.connect(sync_on_stage_change, dispatch_uid="nurturing.stage_changed")
        activity_recorded.connect(end_on_reply, dispatch_uid="nurturing.activity_recorded")
        # A merge of leads moves their enrollments and messages.
        merge_participant_register(ENROLLMENT_PARTICIPANT)
