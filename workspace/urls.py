from django.urls import path

from .views import (
    company,
    deals,
    export_jobs,
    home,
    imports,
    lead,
    lead_actions,
    lists,
    next_up,
    notifications,
    pipeline,
    saved_views,
    search,
    tasks,
)

urlpatterns = [
    # My day and the lead page.
    path("", home.home, name="home"),
    path("leads/<int:pk>/", lead.lead_detail, name="lead-detail"),
    path("leads/<int:pk>/score.json", lead.lead_score_json, name="lead-score-json"),
    path("leads/<int:pk>/activity/", lead.lead_activity, name="lead-activity"),
    path("leads/<int:pk>/touches/", lead_actions.lead_log_touch_view, name="lead-log-touch"),
    path("leads/<int:pk>/notes/", lead_actions.lead_add_note, name="lead-add-note"),
    path("leads/<int:pk>/tasks/", lead_actions.lead_add_task, name="lead-add-task"),
    path("leads/<int:pk>/stage/", lead_actions.lead_change_stage, name="lead-change-stage"),
    path("leads/<int:pk>/take/", lead_actions.lead_take, name="lead-take"),
    path("leads/<int:pk>/rating/", lead_actions.lead_rate, name="lead-rate"),
    path("leads/<int:pk>/deals/", deals.lead_add_deal, name="lead-add-deal"),
    path("deals/<int:deal_id>/change/", deals.deal_change, name="deal-change"),
    path("deals/<int:deal_id>/won/", deals.deal_win_view, name="deal-win"),
    path("deals/<int:deal_id>/lost/", deals.deal_lose_view, name="deal-lose"),
    path(
        "handoffs/<int:handoff_id>/accept/", lead_actions.handoff_accept_view, name="handoff-accept"
    ),
    path(
        "handoffs/<int:handoff_id>/reject/", lead_actions.handoff_reject_view, name="handoff-reject"
    ),
    path("my-day/tasks/<int:task_id>/done/", lead_actions.task_complete, name="my-day-task-done"),
    # Next up: the work queue, and working its items.
    path("next/", next_up.next_up, name="next-up"),
    path("next/<int:lead_id>/outcome/", next_up.next_up_outcome, name="next-up-outcome"),
    path("next/<int:lead_id>/snooze/", next_up.next_up_snooze, name="next-up-snooze"),
    path("next/<int:lead_id>/skip/", next_up.next_up_skip, name="next-up-skip"),
    # The header's search, and a company's page.
    path("search/", search.search, name="search"),
    path("companies/<int:pk>/", company.company_detail, name="company-detail"),
    # The leads list, pipeline, tasks and notifications.
    path("leads/", lists.lead_list, name="lead-list"),
    path("leads/bulk/", lists.lead_bulk, name="lead-bulk"),
    path("leads/count/", lists.lead_count, name="lead-count"),
    path("leads/export.<slug:file_format>", lists.lead_export, name="lead-export"),
    path("leads/exports/", export_jobs.export_jobs_view, name="lead-export-jobs"),
    path("leads/exports/<int:pk>/", export_jobs.export_job_detail, name="lead-export-job"),
    path(
        "leads/exports/<int:pk>/download/",
        export_jobs.export_job_download,
        name="lead-export-job-download",
    ),
    path("leads/views/", saved_views.saved_view_create_view, name="saved-view-create"),
    path("leads/views/<int:pk>/", saved_views.saved_view_open, name="saved-view-open"),
    path(
        "leads/views/<int:pk>/rename/",
        saved_views.saved_view_rename_view,
        name="saved-view-rename",
    ),
    path(
        "leads/views/<int:pk>/delete/",
        saved_views.saved_view_delete_view,
        name="saved-view-delete",
    ),
    path("pipeline/", pipeline.pipeline, name="pipeline"),
    path("pipeline/move/", pipeline.pipeline_move, name="pipeline-move"),
    path("deals/", deals.deal_board_view, name="deals"),
    path("deals/move/", deals.deal_board_move, name="deals-move"),
    path("tasks/", tasks.task_list, name="tasks"),
    path("tasks/<int:pk>/complete/", tasks.task_complete_view, name="tasks-complete"),
    path("tasks/<int:pk>/snooze/", tasks.task_snooze_view, name="tasks-snooze"),
    path("tasks/<int:pk>/reassign/", tasks.task_reassign_view, name="tasks-reassign"),
    # Imports: upload, map, preview, run, error file, undo.
    path("imports/", imports.import_list, name="imports"),
    path("imports/new/", imports.import_new, name="import-new"),
    path("imports/<int:pk>/", imports.import_detail, name="import-detail"),
    path("imports/<int:pk>/map/", imports.import_map, name="import-map"),
    path("imports/<int:pk>/values/", imports.import_values, name="import-values"),
    path("imports/<int:pk>/progress/", imports.import_progress, name="import-progress"),
    path("imports/<int:pk>/start/", imports.import_start, name="import-start"),
    path("imports/<int:pk>/resume/", imports.import_resume, name="import-resume"),
    path("imports/<int:pk>/undo/", imports.import_undo, name="import-undo"),
    path("imports/<int:pk>/errors.csv", imports.import_errors, name="import-errors"),
    path("notifications/", notifications.notification_list, name="notifications"),
    path(
        "notifications/read/",
        notifications.notifications_read_all,
        name="notifications-read-all",
    ),
    path(
        "notifications/<int:pk>/read/",
        notifications.notification_read,
        name="notification-read",
    ),
]
