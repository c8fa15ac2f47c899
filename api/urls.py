"""The routes of ``/api/v1/``."""

from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from .activities import ActivityViewSet
from .companies import CompanyViewSet
from .company_merges import CompanyMergeViewSet
from .errors import api_not_found
from .export_jobs import ExportJobViewSet
from .imports import ImportJobViewSet, error_file_view
from .leads import LeadViewSet
from .merges import LeadMergeViewSet
from .records import DealStageViewSet, DealViewSet, LostReasonViewSet, NoteViewSet, TaskViewSet
from .scoring import RuleViewSet, ScoringModelViewSet
from .tokens import ApiTokenViewSet

router = DefaultRouter()
router.include_root_view = False
router.register("tokens", ApiTokenViewSet, basename="api-token")
router.register("leads", LeadViewSet, basename="api-lead")
router.register("lead-merges", LeadMergeViewSet, basename="api-lead-merge")
router.register("companies", CompanyViewSet, basename="api-company")
router.register("company-merges", CompanyMergeViewSet, basename="api-company-merge")
router.register("activities", ActivityViewSet, basename="api-activity")
router.register("deals", DealViewSet, basename="api-deal")
router.register("deal-stages", DealStageViewSet, basename="api-deal-stage")
router.register("lost-reasons", LostReasonViewSet, basename="api-lost-reason")
router.register("tasks", TaskViewSet, basename="api-task")
router.register("notes", NoteViewSet, basename="api-note")
router.register("scoring-models", ScoringModelViewSet, basename="api-scoring-model")
router.register("imports", ImportJobViewSet, basename="api-import")
router.register("export-jobs", ExportJobViewSet, basename="api-export-job")

rules = RuleViewSet.as_view({"get": "list", "post": "create"})
rule = RuleViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
)

urlpatterns = [
    path("", include(router.urls)),
    path("scoring-models/<int:model_pk>/rules/", rules, name="api-rule-list"),
    path("scoring-models/<int:model_pk>/rules/<int:pk>/", rule, name="api-rule-detail"),
    path("imports/<int:pk>/errors.csv", error_file_view(), name="api-import-errors"),
    # Any other path answers 404 in the error shape; [\s\S]: a path with a line break too.
    re_path(r"^[\s\S]*$", api_not_found, name="api-not-found"),
]
