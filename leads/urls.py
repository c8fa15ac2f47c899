from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("leads/<int:pk>/", views.lead_detail, name="lead-detail"),
    path("leads/<int:pk>/score.json", views.lead_score_json, name="lead-score-json"),
]
