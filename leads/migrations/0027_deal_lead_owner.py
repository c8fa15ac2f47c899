# Each deal keeps a copy of its lead's owner (leads.models.deal), which the database
# keeps: a deal's row takes its lead's owner whenever it is written (whatever the ORM
# sends for it), and a lead's deals follow its owner when that changes. The copy is filled
# for every existing deal and the triggers created in one transaction, with the lead and
# deal tables locked against writes (PostgreSQL), so no write falls between them.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

POSTGRES_TRIGGERS = """
CREATE FUNCTION leads_deal_lead_owner_take() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.lead_owner_id := (SELECT owner_id FROM leads_lead WHERE id = NEW.lead_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER leads_deal_lead_owner_write BEFORE INSERT OR UPDATE ON leads_deal
    FOR EACH ROW EXECUTE FUNCTION leads_deal_lead_owner_take();
CREATE FUNCTION leads_lead_deal_owner_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE leads_deal SET lead_owner_id = NEW.owner_id WHERE lead_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_lead_deal_owner_update AFTER UPDATE OF owner_id ON leads_lead
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION leads_lead_deal_owner_follow();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS leads_lead_deal_owner_update ON leads_lead;
DROP FUNCTION IF EXISTS leads_lead_deal_owner_follow();
DROP TRIGGER IF EXISTS leads_deal_lead_owner_write ON leads_deal;
DROP FUNCTION IF EXISTS leads_deal_lead_owner_take();
"""
LEAD_OWNER = "(SELECT owner_id FROM leads_lead WHERE id = NEW.lead_id)"
SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER leads_deal_lead_owner_insert AFTER INSERT ON leads_deal BEGIN
        UPDATE leads_deal SET lead_owner_id = {LEAD_OWNER} WHERE id = NEW.id;
    END
    """,
    f"""
    CREATE TRIGGER leads_deal_lead_owner_update AFTER UPDATE ON leads_deal
    WHEN NEW.lead_owner_id IS NOT {LEAD_OWNER} BEGIN
        UPDATE leads_deal SET lead_owner_id = {LEAD_OWNER} WHERE id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER leads_lead_deal_owner_update AFTER UPDATE OF owner_id ON leads_lead
    WHEN OLD.owner_id IS NOT NEW.owner_id BEGIN
        UPDATE leads_deal SET lead_owner_id = NEW.owner_id WHERE lead_id = NEW.id;
    END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS leads_lead_deal_owner_update",
    "DROP TRIGGER IF EXISTS leads_deal_lead_owner_update",
    "DROP TRIGGER IF EXISTS leads_deal_lead_owner_insert",
]
FILL = (
    "UPDATE leads_deal SET lead_owner_id = "
    "(SELECT owner_id FROM leads_lead WHERE leads_lead.id = leads_deal.lead_id)"
)


def lead_owner_keep(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("LOCK TABLE leads_lead, leads_deal IN SHARE ROW EXCLUSIVE MODE")
        schema_editor.execute(POSTGRES_TRIGGERS)
    else:
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)
    schema_editor.execute(FILL)


def lead_owner_drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)
    else:
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0026_quadrant_labels_apart_from_bands"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="deal",
            name="lead_owner",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(lead_owner_keep, lead_owner_drop_triggers, elidable=False),
    ]
