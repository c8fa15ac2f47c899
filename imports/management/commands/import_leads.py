"""``python manage.py import_leads FILE``: an import run here and now, or undone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm.models import User
from imports.drafts import (
    DraftError,
    import_job_map,
    import_job_start,
    import_mapping_apply,
    import_mapping_save,
)
from imports.mapping import TARGETS, MappingError, MatchKey, parse_pairs
from imports.models import ImportJob, ImportMapping
from imports.reading import ImportFileError
from imports.services import import_error_rows, import_job_create, import_job_resume, import_job_run
from imports.undo import UndoError, import_job_undo


class Command(BaseCommand):
    help = (
        "Import a CSV or XLSX file of leads, companies, activities or deals in this process "
        "(quietly: no hand-offs, notifications or nurture emails), or undo an import."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="The CSV or XLSX file.")
        parser.add_argument("--kind", choices=sorted(TARGETS), default="leads")
        parser.add_argument(
            "--map",
            default=None,
            help='Columns to fields: "Email=email,Company Name=company"; suggested if omitted.',
        )
        parser.add_argument("--const", default="", help='Every row: "source=event,campaign=Expo"')
        parser.add_argument(
            "--value-map", default="", help='JSON: {"stage": {"Hot": "sql", "Select": ""}}'
        )
        parser.add_argument("--match", choices=[MatchKey.EMAIL, MatchKey.EXTERNAL_ID])
        parser.add_argument("--encoding", default="")
        parser.add_argument("--delimiter", default="")
        parser.add_argument("--sheet", default="")
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--month-first", action="store_true", help="03/04/2024 is 4 March.")
        parser.add_argument("--decimal-comma", action="store_true", help="1.234,50 is a thousand.")
        parser.add_argument("--phone-region", default="")
        parser.add_argument("--no-create", action="store_true", help="Only update what matches.")
        parser.add_argument("--no-update", action="store_true", help="Only create new rows.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and count; store nothing."
        )
        parser.add_argument("--user", help="Run as this user (their permissions apply).")
        parser.add_argument("--errors", help="Write the failed rows to this CSV file.")
        parser.add_argument("--chunk-size", type=int, default=None)
        parser.add_argument("--undo", type=int, metavar="JOB", help="Undo import JOB.")
        parser.add_argument("--resume", type=int, metavar="JOB", help="Go on with import JOB.")
        parser.add_argument(
            "--nurture",
            action="store_true",
            help="Let automatic nurture sequences enroll the leads it creates.",
        )
        parser.add_argument(
            "--mapping", metavar="NAME", help="Map as the mapping saved for source NAME."
        )
        parser.add_argument(
            "--save-mapping", metavar="NAME", help="Save this import's mapping for source NAME."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        by = self._user(options["user"])
        try:
            if options["undo"]:
                job = import_job_undo(job_id=options["undo"], by=by)
                report = job.undo_report
                self.stdout.write(
                    f"Import {job.pk} undone: {report['deleted']} removed, "
                    f"{report['restored']} restored, {report['kept_count']} left as they "
                    "changed since"
                )
                for kept in report["kept"]:
                    self.stdout.write(
                        f"  row {kept['row']}: {kept['type']} {kept['id']} {kept['why']}"
                    )
                return
            if options["resume"]:
                resumed = import_job_resume(
                    job_id=options["resume"], chunk_size=options["chunk_size"]
                )
                if resumed is None:
                    raise CommandError(f"Import {options['resume']} is not running or failed.")
                self._finish(resumed, options)
                return
            self._import(by, options)
        except (ImportFileError, MappingError, UndoError, DraftError, ValidationError) as exc:
            raise CommandError(_message(exc)) from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        except ImportJob.DoesNotExist:
            raise CommandError("There is no such import.") from None

    def _import(self, by: User | None, options: dict[str, Any]) -> None:
        if not options["file"]:
            raise CommandError("Name the file to import (or --undo JOB, --resume JOB).")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        if options["mapping"]:
            self._import_as_saved(path, by, options)
            return
        value_maps = json.loads(options["value_map"]) if options["value_map"] else {}
        mapping = parse_pairs(options["map"]) if options["map"] is not None else None
        default_key = MatchKey.EMAIL
        with path.open("rb") as handle:
            job = import_job_create(
                file=handle,
                file_name=path.name,
                kind=options["kind"],
                by=by,
                mapping=mapping,
                constants=parse_pairs(options["const"]),
                value_maps=value_maps,
                match_key=options["match"] or default_key,
                dry_run=options["dry_run"],
                enqueue=False,
                encoding=options["encoding"],
                delimiter=options["delimiter"].replace("\\t", "\t"),
                sheet=options["sheet"],
                time_zone=options["time_zone"],
                day_first=not options["month_first"],
                decimal_comma=options["decimal_comma"],
                phone_region=options["phone_region"].upper(),
                create_new=not options["no_create"],
                update_existing=not options["no_update"],
                nurture=options["nurture"],
            )
        self._run(job, by, options)

    def _import_as_saved(self, path: Path, by: User | None, options: dict[str, Any]) -> None:
        """Map the file as the mapping saved for its source, then run it; ``--const``
        adds to the saved constants and ``--nurture`` lets nurture have the leads."""
        if options["map"] is not None or options["value_map"]:
            raise CommandError("Use --mapping or --map and --value-map, not both.")
        saved = ImportMapping.objects.filter(kind=options["kind"], name=options["mapping"]).first()
        if saved is None:
            raise CommandError(f"No {options['kind']} mapping is saved as “{options['mapping']}”.")
        with path.open("rb") as handle:
            job = import_job_create(
                file=handle,
                file_name=path.name,
                kind=options["kind"],
                by=by,
                draft=True,
                encoding=options["encoding"],
                delimiter=options["delimiter"].replace("\\t", "\t"),
                sheet=options["sheet"],
            )
        job = import_mapping_apply(job=job, saved=saved, by=by)
        if options["const"] or options["nurture"]:
            job = import_job_map(
                job=job,
                by=by,
                mapping=job.mapping,
                constants={**job.constants, **parse_pairs(options["const"])},
                value_maps=job.value_maps,
                nurture=options["nurture"] or job.nurture,
            )
        job = import_job_start(job=job, by=by, dry_run=options["dry_run"], enqueue=False)
        self._run(job, by, options)

    def _run(self, job: ImportJob, by: User | None, options: dict[str, Any]) -> None:
        mapped = ", ".join(f"{column} → {field}" for column, field in job.mapping.items())
        self.stdout.write(f"Import {job.pk}: {job.file_name} as {job.kind}; {mapped}")
        if options["save_mapping"]:
            import_mapping_save(job=job, name=options["save_mapping"], by=by)
            self.stdout.write(f"Mapping saved as “{options['save_mapping']}”")
        ran = import_job_run(job_id=job.pk, chunk_size=options["chunk_size"])
        self._finish(ran or job, options)

    def _finish(self, job: ImportJob, options: dict[str, Any]) -> None:
        job.refresh_from_db()
        if options["errors"] and job.failed:
            with open(options["errors"], "w", encoding="utf-8", newline="") as out:
                out.writelines(import_error_rows(job=job))
            self.stdout.write(f"Failed rows written to {options['errors']}")
        if job.status == "failed":
            raise CommandError(f"Import {job.pk} failed: {job.error}")
        self.stdout.write(job.summary())

    def _user(self, name: str | None) -> User | None:
        if not name:
            return None
        user = User.objects.filter(username=name).first()
        if user is None:
            raise CommandError(f"There is no user {name!r}.")
        return user


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)
