from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Lead scoring"

    def ready(self) -> None:
        from leads.account_scores import account_score_provider_set
        from leads.company_domains import free_mail_provider_set
        from leads.exports import export_column_register
        from leads.merge_participants import merge_participant_register
        from leads.score_explanations import score_explanation_provider_set
        from leads.signals import activity_recorded, lead_profile_changed

        from . import (
            alerts,
            tasks,  # noqa: F401  (registered: services queue them by name)
        )
        from .account_selectors import lead_company_account_score
        from .explanation import lead_primary_explanation
        from .lead_merges import LEDGER_PARTICIPANT
        from .receivers import (
            fill_predictive_on_rescore,
            queue_activities,
            queue_profile,
            refresh_accounts_on_rescore,
        )
        from .ruleset import free_mail_listed
        from .selectors import PREDICTIVE_EXPORT_AFTER, PREDICTIVE_EXPORT_COLUMN
        from .signals import rescore_finished, score_surged

        activity_recorded.connect(queue_activities, dispatch_uid="scoring.activity_recorded")
        lead_profile_changed.connect(queue_profile, dispatch_uid="scoring.lead_profile_changed")
        rescore_finished.connect(fill_predictive_on_rescore, dispatch_uid="scoring.predictive_fill")
        rescore_finished.connect(
            refresh_accounts_on_rescore, dispatch_uid="scoring.accounts_after_rescore"
        )
        # The surge alert: scoring announces the fact and alerts the owner through leads.
        score_surged.connect(alerts.owner_alert_on_surge, dispatch_uid="scoring.surge_alert")
        # Hand-off emails and webhook payloads list the rules behind the score.
        score_explanation_provider_set(lead_primary_explanation)
        # Key-account assignment rules route a lead by its company's account score.
        account_score_provider_set(lead_company_account_score)
        # A merge of leads moves their ledger and rescores the survivor.
        merge_participant_register(LEDGER_PARTICIPANT)
        # Duplicate companies never match by a domain on the marketers' free-mail list.
        free_mail_provider_set(free_mail_listed)
        # Exported lists carry the predictive score beside the rule score.
        export_column_register(PREDICTIVE_EXPORT_COLUMN, after=PREDICTIVE_EXPORT_AFTER)
