from django.db import migrations

from crm.migration_ops import covering_index_swap

# The rank's stage index now also holds each lead's band and owner, so that the list's
# capped count of a stage and a band among the leads a person sees (the first 1,001
# matches) reads the index alone, hottest first, instead of scanning the rank until
# enough matches turn up.


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("leads", "0031_rank_inbound")]

    operations = [
        covering_index_swap(
            model_name="leadrank",
            table="leads_leadrank",
            fields=["stage", "-score", "-lead"],
            key='("stage", "score" DESC, "lead_id" DESC)',
            old="rank_stage_hottest_idx",
            new="rank_stage_filters_idx",
            include=["band", "owner_id"],
        )
    ]
