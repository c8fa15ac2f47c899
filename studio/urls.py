from django.urls import path

from . import predictive_views, predictive_weight_views, rule_views, suggestion_views, views

urlpatterns = [
    path("", views.studio_index, name="studio"),
    path("models/<int:pk>/", views.studio_model, name="studio-model"),
    path("models/<int:pk>/reach/", views.studio_reach, name="studio-reach"),
    path("models/<int:pk>/rules/<int:rule_id>/", views.studio_rule, name="studio-rule"),
    path(
        "models/<int:pk>/rules/<int:rule_id>/edit/",
        rule_views.studio_rule_edit,
        name="studio-rule-edit",
    ),
    path(
        "models/<int:pk>/rules/<int:rule_id>/delete/",
        rule_views.studio_rule_delete,
        name="studio-rule-delete",
    ),
    path(
        "models/<int:pk>/rules/new/<str:kind>/", rule_views.studio_rule_add, name="studio-rule-add"
    ),
    path(
        "models/<int:pk>/rules/count/<str:kind>/",
        rule_views.studio_rule_count,
        name="studio-rule-count",
    ),
    path(
        "models/<int:pk>/suggestions/",
        suggestion_views.studio_suggestions,
        name="studio-suggestions",
    ),
    path(
        "models/<int:pk>/suggestions/draft/",
        suggestion_views.studio_suggestions_draft,
        name="studio-suggestions-draft",
    ),
    path(
        "models/<int:pk>/predictive/",
        predictive_views.studio_predictive,
        name="studio-predictive",
    ),
    path(
        "models/<int:pk>/predictive/train/",
        predictive_views.studio_predictive_train,
        name="studio-predictive-train",
    ),
    path(
        "models/<int:pk>/predictive/weights/",
        predictive_weight_views.studio_predictive_weights,
        name="studio-predictive-weights",
    ),
    path(
        "models/<int:pk>/predictive/weights/draft/",
        predictive_weight_views.studio_predictive_weights_draft,
        name="studio-predictive-weights-draft",
    ),
    path("models/<int:pk>/duplicate/", views.studio_duplicate, name="studio-duplicate"),
    path("models/<int:pk>/preview/", views.studio_preview, name="studio-preview"),
    path("models/<int:pk>/thresholds/", views.studio_thresholds, name="studio-thresholds"),
    path(
        "models/<int:pk>/thresholds/compare/",
        views.studio_thresholds_compare,
        name="studio-thresholds-compare",
    ),
    path("models/<int:pk>/publish/", views.studio_publish, name="studio-publish"),
    path("models/<int:pk>/roll-back/", views.studio_rollback, name="studio-roll-back"),
]
