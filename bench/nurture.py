"""Nurture sending: 10,000 due steps processed end to end, beside a naive loop and bare SQL.

    python bench/nurture.py                 # 10,000 due steps, naive loop sampled on 2,000
    python bench/nurture.py --steps 10000 --naive-sample 2000 --no-record

Runs against its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``hotlist_bench_nurture``), rebuilt every run. Each lead has one enrollment in a two-email
sequence whose first step is due. Measured in one run:

1. bare SQL: one ``INSERT … SELECT`` of the 10,000 Message rows (rolled back): the raw
   insert rate, the floor for creating the rows at all;
2. Hotlist: ``enrollments_process_due`` (claims batches with ``FOR UPDATE SKIP LOCKED``,
   checks suppression and the frequency cap, creates the messages, moves the
   enrollments on), then every message sent through ``nurturing.tasks.send_message``
   run in process (eager) with Django's locmem email backend: rendering, tracked links,
   headers and the MIME message are built, only the SMTP round trip is left out;
3. naive: one enrollment at a time through the ORM (load it, its lead, its step, the
   suppression and cap checks, create the message, save the enrollment, one transaction
   each), timed on a sample and multiplied out, then the same sending.

The table goes to docs/PERFORMANCE.md (section "nurture").
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_nurture"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--naive-sample", type=int, default=2_000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    harness.drop_database(URL)
    harness.setup_django(URL)
    from django.conf import settings
    from django.core.management import call_command

    from crm.celery import app as celery_app

    call_command("migrate", verbosity=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True

    world = build_world(args.steps)
    raw = bare_insert(world)
    reset(world)
    product = hotlist_run(world)
    reset(world)
    naive = naive_run(world, min(args.naive_sample, args.steps))
    table = report(args.steps, raw, product, naive)
    print(table)
    if not args.no_record:
        harness.record("nurture", table)


def build_world(steps: int) -> dict:
    from django.utils import timezone

    from leads.models import Company, Lead
    from nurturing.models import Enrollment, Sequence, Step

    company = Company.objects.create(name="Bench Co", domain="bench.example")
    Lead.objects.bulk_create(
        (
            Lead(first_name=f"Lead{i}", email=f"lead{i}@bench.example", company=company)
            for i in range(steps)
        ),
        batch_size=2000,
    )
    sequence = Sequence.objects.create(name="Bench track")
    for position, delay in ((1, 0), (2, 3)):
        Step.objects.create(
            sequence=sequence,
            position=position,
            delay_days=delay,
            subject="Hello {{ first_name }} at {{ company_name }}",
            body_text="Hi {{ first_name }},\nread https://hotlist.example/guide/"
            f"{position}\nand https://hotlist.example/pricing",
            body_html="<p>Hi {{ first_name }} of {{ company_name }}</p>"
            f'<p><a href="https://hotlist.example/guide/{position}">The guide</a> and '
            '<a href="https://hotlist.example/pricing">pricing</a></p>',
        )
    now = timezone.now()
    Enrollment.objects.bulk_create(
        (
            Enrollment(lead_id=pk, sequence=sequence, started_at=now, next_due_at=now)
            for pk in Lead.objects.values_list("pk", flat=True)
        ),
        batch_size=2000,
    )
    call_command_analyze()
    return {"sequence": sequence, "steps": steps}


def call_command_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def reset(world: dict) -> None:
    """Every enrollment due again at step 1, no messages, no outbox."""
    from django.core import mail
    from django.utils import timezone

    from nurturing.models import Enrollment, Message

    Message.objects.all().delete()
    now = timezone.now() - dt.timedelta(seconds=1)
    Enrollment.objects.update(
        status="active", next_position=1, next_due_at=now, ended_at=None, exit_reason=""
    )
    mail.outbox = []
    call_command_analyze()


def bare_insert(world: dict) -> float:
    """Seconds for one INSERT … SELECT of a message per enrollment, rolled back."""
    from django.db import connection, transaction

    step_id = world["sequence"].steps.get(position=1).pk

    class Rollback(Exception):
        pass

    start = time.perf_counter()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO nurturing_message
                    (enrollment_id, step_id, lead_id, status, to_email, from_email, subject,
                     links, provider_message_id, attempts, error, created_at)
                SELECT e.id, %s, e.lead_id, 'queued', l.email, '', '', '[]'::jsonb, '', 0, '',
                       now()
                FROM nurturing_enrollment e JOIN leads_lead l ON l.id = e.lead_id
                """,
                [step_id],
            )
            elapsed = time.perf_counter() - start
            raise Rollback
    except Rollback:
        pass
    return elapsed


def hotlist_run(world: dict) -> dict:
    from django.core import mail

    import nurturing.due_steps as due_steps
    from nurturing.models import Message
    from nurturing.tasks import send_message

    queued: list[int] = []
    real_request = due_steps.messages_send_request
    due_steps.messages_send_request = lambda *, message_ids: queued.extend(message_ids)
    try:
        start = time.perf_counter()
        handled = due_steps.enrollments_process_due()
        process = time.perf_counter() - start
    finally:
        due_steps.messages_send_request = real_request
    # This server runs without autovacuum: give the planner the new rows' statistics, as
    # autovacuum would, or it reads a 10,000-row table as empty.
    call_command_analyze()
    start = time.perf_counter()
    for message_id in queued:
        send_message.delay(message_id)
    send = time.perf_counter() - start
    sent = Message.objects.filter(status="sent").count()
    assert handled == world["steps"] == sent == len(mail.outbox), (handled, sent)
    return {"process": process, "send": send}


def naive_run(world: dict, sample: int) -> dict:
    """One enrollment at a time, as a first version would write it."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from leads.models import Lead
    from nurturing.models import Enrollment, Message, Step, Suppression
    from nurturing.tasks import send_message

    now = timezone.now()
    ids = list(
        Enrollment.objects.filter(status="active", next_due_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:sample]
    )
    cap = dt.timedelta(hours=settings.NURTURE_FREQUENCY_CAP_HOURS)
    created = []
    start = time.perf_counter()
    for pk in ids:
        with transaction.atomic():
            enrollment = Enrollment.objects.select_for_update().get(pk=pk)
            lead = Lead.objects.get(pk=enrollment.lead_id)
            if Suppression.objects.filter(email=lead.email).exists():
                continue
            if Message.objects.filter(lead=lead, created_at__gt=now - cap).exists():
                continue
            step = Step.objects.get(sequence_id=enrollment.sequence_id, position=1)
            following = Step.objects.filter(
                sequence_id=enrollment.sequence_id, position__gt=step.position
            ).first()
            message = Message.objects.create(
                enrollment=enrollment, step=step, lead=lead, to_email=lead.email
            )
            enrollment.next_position = following.position
            enrollment.next_due_at = now + following.delay
            enrollment.save(update_fields=["next_position", "next_due_at"])
            created.append(message.pk)
    process = time.perf_counter() - start
    call_command_analyze()
    start = time.perf_counter()
    for message_id in created:
        send_message.delay(message_id)
    send = time.perf_counter() - start
    assert len(created) == sample
    scale = world["steps"] / sample
    return {"process": process * scale, "send": send * scale, "sample": sample}


def report(steps: int, raw: float, product: dict, naive: dict) -> str:
    def row(what: str, seconds: float, note: str = "") -> str:
        rate = steps / seconds if seconds else float("inf")
        return f"| {what} | {harness.seconds(seconds)} | {rate:,.0f} | {note} |"

    hotlist_total = product["process"] + product["send"]
    naive_total = naive["process"] + naive["send"]
    lines = [
        "## Nurture sending",
        "",
        f"Measured by `python bench/nurture.py` on {harness.machine()}.",
        f"Data: {steps:,} leads, each with one enrollment whose first email step is due "
        "(two-email sequence, tracked links in text and HTML); frequency cap on; sending "
        "in process through `nurturing.tasks.send_message` with the locmem email backend "
        "(everything but the SMTP round trip).",
        "",
        "| what | wall | steps/s | note |",
        "| --- | --- | --- | --- |",
        row("Hotlist end to end: due steps processed and every email sent", hotlist_total),
        row(
            "… processing the due steps (claim, checks, Message rows, enrollments moved on)",
            product["process"],
            f"batches of 500, `FOR UPDATE SKIP LOCKED`; {product['process'] / raw:.1f}x the "
            "bare INSERT",
        ),
        row("… sending (render, track links, build MIME, claim and mark each row)",
            product["send"]),
        row(
            "Naive: one enrollment at a time through the ORM, end to end",
            naive_total,
            f"sampled on {naive['sample']:,} steps and multiplied out; "
            f"{naive_total / hotlist_total:.1f}x Hotlist",
        ),
        row("… of which processing", naive["process"],
            f"{naive['process'] / product['process']:.1f}x Hotlist's processing"),
        row("Bare SQL: one `INSERT … SELECT` of the Message rows (rolled back)", raw,
            "the raw insert rate of Message rows"),
        "",
        "Sending dominates: each message is rendered and serialized on its own and its row is "
        "claimed and marked in two statements, which is what keeps a message from going out "
        "twice. With a real SMTP server, the server's round trip adds to the sending figure; "
        "workers on the email queue scale it out. The tables are analyzed after the messages "
        "are created, as autovacuum would (this server runs without it).",
    ]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
