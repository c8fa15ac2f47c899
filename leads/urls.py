from django.urls import path

from .views import home, lead

urlpatterns = [
    # My day and the lead page.
    path("", home.home, name="home"),
    path("leads/<int:pk>/", lead.lead_detail, name="lead-detail"),
    path("leads/<int:pk>/score.json", lead.lead_score_json, name="lead-score-json"),
    # The leads list, pipeline, tasks and notifications.
]
