from django.urls import path

from . import views

urlpatterns = [
    path("", views.studio_index, name="studio"),
    path("models/<int:pk>/", views.studio_model, name="studio-model"),
    path("models/<int:pk>/reach/", views.studio_reach, name="studio-reach"),
    path("models/<int:pk>/rules/<int:rule_id>/", views.studio_rule, name="studio-rule"),
    path("models/<int:pk>/duplicate/", views.studio_duplicate, name="studio-duplicate"),
    path("models/<int:pk>/preview/", views.studio_preview, name="studio-preview"),
    path("models/<int:pk>/thresholds/", views.studio_thresholds, name="studio-thresholds"),
    path("models/<int:pk>/publish/", views.studio_publish, name="studio-publish"),
    path("models/<int:pk>/roll-back/", views.studio_rollback, name="studio-roll-back"),
]
