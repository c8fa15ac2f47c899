from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from leads.models import Lead, Task


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """My day: the rep's hottest leads and open tasks."""
    leads = Lead.objects.visible_to(request.user).select_related("company").hottest()[:10]
    tasks = Task.objects.open().filter(assignee=request.user).select_related("lead")[:10]
    return render(request, "leads/home.html", {"leads": leads, "tasks": tasks})
