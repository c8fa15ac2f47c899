from django.core.management.base import BaseCommand, CommandError

from scoring.models import ScoringModel
from scoring.rescore_jobs import model_rescore_in_process


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
            job = model_rescore_in_process(
                model=scoring_model, reason="rescore command", chunk_size=chunk_size
            )
            if job is None:  # another run claimed it first
                continue
            self.stdout.write(
                f"{scoring_model}: {job.done} leads rescored, {job.changed_entries} ledger entries"
            )
