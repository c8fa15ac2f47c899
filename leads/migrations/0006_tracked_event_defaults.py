"""The usual Segment event names mapped to activity types; marketers edit them in the admin."""

from django.db import migrations

DEFAULT_EVENTS = {
    "Demo Requested": "demo_request",
    "Quote Requested": "quote_request",
    "Signed Up": "trial_signup",
    "Trial Started": "trial_signup",
    "Webinar Registered": "webinar_registration",
    "Webinar Attended": "webinar_attendance",
    "Email Clicked": "email_click",
    "Email Link Clicked": "email_click",
    "Email Opened": "email_open",
    "Email Replied": "email_reply",
    "Email Bounced": "email_bounce",
    "Unsubscribed": "unsubscribe",
    "Form Submitted": "form_submission",
    "Content Downloaded": "content_download",
    "File Downloaded": "content_download",
    "Event Attended": "event_attendance",
}


def add_defaults(apps, schema_editor):
    TrackedEvent = apps.get_model("leads", "TrackedEvent")
    for name, activity_type in DEFAULT_EVENTS.items():
        if not TrackedEvent.objects.filter(name__iexact=name).exists():
            TrackedEvent.objects.create(name=name, activity_type=activity_type)


def remove_defaults(apps, schema_editor):
    TrackedEvent = apps.get_model("leads", "TrackedEvent")
    TrackedEvent.objects.filter(name__in=list(DEFAULT_EVENTS)).delete()


class Migration(migrations.Migration):
    dependencies = [("leads", "0005_tracking")]

    operations = [migrations.RunPython(add_defaults, remove_defaults)]
