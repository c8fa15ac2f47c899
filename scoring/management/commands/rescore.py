from django.core.management.base import BaseCommand, CommandError

from scoring.models import RescoreJob, ScoringModel
from scoring.rescore_jobs import rescore_job_run


class Command(BaseCommand):
    help = "Rescore every lead of one scoring model (or all active models) in this process."

    def add_arguments(self, parser):
        parser.add_argument(
            "--model", help="Name of the scoring model; all active ones if omitted."
        )
        parser.add_argument("--chunk-size", type=int, default=500)

    def handle(self, *args, model: str | None, chunk_size: int, **options) -> None:
        models = ScoringModel.objects.active()
        if model:
            models = ScoringModel.objects.filter(name=model)
            if not models:
                raise CommandError(f"There is no scoring model named {model!r}.")
        for scoring_model in models:
            queued = RescoreJob.objects.create(model=scoring_model, reason="rescore command")
            job = rescore_job_run(job_id=queued.pk, chunk_size=chunk_size, in_process=True)
            if job is None:  # another run claimed it first
                continue
            self.stdout.write(
                f"{scoring_model}: {job.done} leads rescored, {job.changed_entries} ledger entries"
            )
