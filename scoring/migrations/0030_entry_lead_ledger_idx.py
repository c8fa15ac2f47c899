from django.db import migrations

from crm.migration_ops import covering_index_swap

# The ledger's (lead, model, at) index now holds everything a lead page reads of a
# lead's entries: each entry's id, rule, kind, points, when it was written and the entry
# it reverses. The explanation (the active entries, by rule) and the score history (every
# entry) then read the index alone, a few contiguous pages, where they fetched a heap page
# per entry: the rep's hottest leads hold thousands of entries spread over a ledger of
# millions.


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("scoring", "0029_rescorejob_accounts_pending")]

    operations = [
        covering_index_swap(
            model_name="scoreentry",
            table="scoring_scoreentry",
            fields=["lead", "model", "at"],
            key='("lead_id", "model_id", "at")',
            old="entry_lead_model_at_pts_idx",
            new="entry_lead_ledger_idx",
            include=["id", "rule_id", "kind", "points", "created_at", "reversal_of_id"],
            old_include=["kind", "points"],
        )
    ]
