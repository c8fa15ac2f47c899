from django.core.management.base import BaseCommand, CommandError

from scoring.models import ScoringModel
from scoring.predictive.services import NotEnoughData, predictive_train


class Command(BaseCommand):
    help = (
        "Train a predictive model on one scoring model's closed leads (or every active "
        "model's) and publish it when it beats the rules on the newest outcomes."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model", help="Name of the scoring model; all active ones if omitted."
        )

    def handle(self, *args, model: str | None, **options) -> None:
        models = ScoringModel.objects.active()
        if model:
            models = ScoringModel.objects.filter(name=model)
            if not models:
                raise CommandError(f"There is no scoring model named {model!r}.")
        refused = []
        for scoring_model in models:
            try:
                card = predictive_train(model=scoring_model, by=None)
            except NotEnoughData as exc:
                refused.append(f"{scoring_model}: {exc}")
                continue
            self.stdout.write(
                f"{scoring_model}: {card.get_status_display()}, ROC AUC {card.roc_auc:.3f} "
                f"(rules {card.rule_auc or 0.5:.3f}). {card.verdict}"
            )
        if refused:
            raise CommandError("\n".join(refused))
