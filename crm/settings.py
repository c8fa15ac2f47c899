"""Hotlist settings: one module, read from the environment (``crm.env``).

Every value has a default that works on a laptop (SQLite under ``var/``, an
embedded Celery broker on the file system, mail printed to the console).
Production sets ``DEBUG=false``, ``SECRET_KEY``, ``DATABASE_URL`` and
``CELERY_BROKER_URL``; nothing else differs between the two.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from crm.env import env_bool, env_float, env_int, env_list, env_networks, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


# The key below is public; the `crm.E001` system check refuses it when DEBUG is off.
DEVELOPMENT_SECRET_KEY = "django-insecure-hotlist-development-key-never-use-in-production"

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

VAR_DIR = Path(env_str("HOTLIST_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "crm",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "leads",
    "scoring",
    "nurturing",
    "reports",
    "imports",
    "workspace",
    "studio",
    "api",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"
ASGI_APPLICATION = "crm.asgi.application"
AUTH_USER_MODEL = "crm.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workspace.context_processors.unread_notifications",
                "workspace.context_processors.workspace_permissions",
                "studio.context_processors.studio_permissions",
                "workspace.context_processors.currency",
            ],
        },
    },
    {
        # The rows the busiest pages repeat, *.jinja beside the pages (crm/jinja2.py).
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "NAME": "jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "crm.jinja2.environment"},
    },
]
# Built-in form and widget templates through Jinja2 (crm/forms.py).
FORM_RENDERER = "crm.forms.FormRenderer"

# --- Database -----------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'hotlist.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # WAL lets the web server, the worker and beat read while one of them writes;
    # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-hotlist.sqlite3")}
    # Indexes that also hold columns for index-only reads (``include``) are PostgreSQL's;
    # SQLite builds them on their keys, as intended, and need not say so on every command.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -----------------------------------------------------

LANGUAGE_CODE = "en-us"
# Dates read "6 Dec 2026" and moments "6 Dec 2026, 14:30" everywhere (crm/formats).
FORMAT_MODULE_PATH = ["crm.formats"]
# The currency of the business: money totals and reports are labelled with it.
HOTLIST_CURRENCY = env_str("HOTLIST_CURRENCY", "EUR").upper()
TIME_ZONE = env_str("TIME_ZONE", "UTC")
# Hotlist speaks English only. Without the translation machinery every label, date
# format and "3 hours ago" skips a lookup of the active language, thousands of them on
# a page of leads.
USE_I18N = False
USE_TZ = True

# --- Static files -------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Email --------------------------------------------------------------------

# Without a mail server, every email is written to a file under EMAIL_FILE_PATH (one
# file per process run), not printed into the terminal between the logs: the demo
# world sends hand-off and nurture emails as soon as it starts.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if not os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Hotlist <hotlist@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security (production values whenever DEBUG is off) -----------------------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST framework -----------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so a request without credentials answers 401 with a Bearer challenge.
        "api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.RoleModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "api.filters.StrictFilterBackend",
        "rest_framework.filters.SearchFilter",
        "api.filters.StableOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.ApiCursorPagination",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "api.throttling.AnonRateThrottle",
        "api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "30/minute"),
        "user": env_str("API_THROTTLE_USER", "600/minute"),
    },
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "api.schema.ApiAutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hotlist API",
    "DESCRIPTION": (
        "Leads, activities and scores of a Hotlist CRM. Authenticate with "
        "`Authorization: Bearer <key>` (create a key at `/api/v1/tokens/`). "
        'Every error answers `{"error": {"status", "code", "message", "fields"}}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ActivityTypeEnum": "leads.models.ActivityType",
        "ImportKindEnum": "imports.mapping.ImportKind.CHOICES",
        "ScoreTrendEnum": "scoring.trend.Trend",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.public_schema.add_public_endpoints",
    ],
}

# --- Redis (broker and cache) -------------------------------------------------

# A request must not hang on a Redis that is down or unreachable: every connection to
# it (the broker's and the cache's) gives up after these many seconds, and the request
# goes on without it (crm/resilience.py); the sweepers catch up once it is back.
REDIS_CONNECT_TIMEOUT = env_float("REDIS_CONNECT_TIMEOUT", 0.5)
# Each command; longer than kombu's 1-second blocking read of the queues.
REDIS_TIMEOUT = env_float("REDIS_TIMEOUT", 5.0)
if REDIS_CONNECT_TIMEOUT <= 0 or REDIS_TIMEOUT <= 1:
    raise ImproperlyConfigured("REDIS_CONNECT_TIMEOUT must be above 0, REDIS_TIMEOUT above 1.")
REDIS_SOCKET_OPTIONS = {
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
    "socket_timeout": REDIS_TIMEOUT,
}

# --- Celery -------------------------------------------------------------------

BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded transport: messages are files under var/broker, so queued work
    # survives a restart and web, worker and beat need no server between them.
    for folder in ("queue", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "polling_interval": 0.1,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, **REDIS_SOCKET_OPTIONS}
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_CONNECT_TIMEOUT
# A worker whose broker went away keeps trying to reconnect (every 30 s at most), however
# long the outage; by default it would give up, and exit, after 100 tries.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Sending a task from a request tries twice, at once: the second attempt reconnects
# after the broker restarted under a pooled connection; a broker that is down fails
# both at once and the request goes on (the sweepers queue the work later).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.1,
}
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
# Keep a worker's database connection across tasks (Celery closes it after each task
# otherwise); crm/celery.py still drops a connection that broke or outlived CONN_MAX_AGE.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 100)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Real-time work (scoring one lead, hand-offs) never waits behind a bulk rescore.
CELERY_TASK_DEFAULT_QUEUE = "default"

CELERY_TASK_ROUTES = {
    "scoring.tasks.score_lead": {"queue": "realtime"},
    "scoring.tasks.rescore_*": {"queue": "bulk"},
    "scoring.tasks.decay_*": {"queue": "bulk"},
    "scoring.tasks.refresh_*": {"queue": "bulk"},
    "scoring.tasks.suggest_*": {"queue": "bulk"},
    "scoring.tasks.predictive_*": {"queue": "bulk"},
    "leads.tasks.handoff_*": {"queue": "realtime"},
    "leads.tasks.import_*": {"queue": "bulk"},
    "imports.tasks.*": {"queue": "bulk"},
    "leads.tasks.export_*": {"queue": "bulk"},
    "reports.tasks.refresh_*": {"queue": "bulk"},
    "nurturing.tasks.send_*": {"queue": "email"},
    "*.tasks.send_*": {"queue": "email"},
    "crm.tasks.webhook_deliver": {"queue": "default"},
}

# The whole periodic schedule, in one place.
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "crm.tasks.record_heartbeat",
        "schedule": env_int("HEARTBEAT_SECONDS", 30),
    },
    "score-sweeper": {
        "task": "scoring.tasks.sweep_unscored",
        "schedule": env_int("SCORE_SWEEP_SECONDS", 60),
    },
    "rescore-resume": {
        "task": "scoring.tasks.rescore_resume",
        "schedule": 300,
    },
    "predictive-retrain": {
        "task": "scoring.tasks.predictive_retrain",
        "schedule": crontab(
            day_of_week="sun", hour=env_int("PREDICTIVE_RETRAIN_HOUR", 3), minute=0
        ),
        "options": {"queue": "bulk"},
    },
    "nightly-decay": {
        "task": "scoring.tasks.decay_scores",
        "schedule": crontab(hour=env_int("DECAY_HOUR", 2), minute=0),
    },
    # After the decay: each company's score from its people's (scoring.accounts).
    "nightly-account-scores": {
        "task": "scoring.tasks.refresh_account_scores",
        "schedule": crontab(hour=env_int("DECAY_HOUR", 2), minute=30),
    },
    "tracking-pending-purge": {
        "task": "leads.tasks.purge_pending_events",
        "schedule": crontab(hour=env_int("PENDING_PURGE_HOUR", 3), minute=30),
    },
    "idempotency-keys-purge": {
        "task": "crm.tasks.purge_idempotent_requests",
        "schedule": crontab(minute=env_int("IDEMPOTENCY_PURGE_MINUTE", 15)),
    },
    "webhook-retry-due": {
        "task": "crm.tasks.webhook_retry_due",
        "schedule": env_int("WEBHOOK_RETRY_SECONDS", 30),
    },
    "duplicates-scan": {
        "task": "leads.tasks.scan_duplicates",
        "schedule": crontab(hour=env_int("DUPLICATE_SCAN_HOUR", 1), minute=30),
        "options": {"queue": "bulk"},
    },
    "handoff-escalate-overdue": {
        "task": "leads.tasks.handoff_escalate_overdue",
        "schedule": 120,
    },
    "handoff-resume-stalled": {
        "task": "leads.tasks.handoff_resume_stalled",
        "schedule": 300,
    },
    "notification-email-resume": {
        "task": "leads.tasks.notification_email_resume",
        "schedule": 300,
    },
    "nurture-process-due": {
        "task": "nurturing.tasks.process_due",
        "schedule": env_int("NURTURE_SEND_SECONDS", 60),
    },
    "nurture-enroll-matching": {
        "task": "nurturing.tasks.enroll_matching",
        "schedule": crontab(minute=env_int("NURTURE_ENROLL_MINUTE", 40)),
    },
    "nurture-resume-stalled": {
        "task": "nurturing.tasks.resume_stalled",
        "schedule": 300,
    },
    "import-sweep": {
        "task": "imports.tasks.import_sweep",
        "schedule": 300,
        "options": {"queue": "bulk"},
    },
    "export-sweep": {
        "task": "leads.tasks.export_sweep",
        "schedule": 300,
        "options": {"queue": "bulk"},
    },
    # Reports
    "reports-weekly-digest": {
        "task": "reports.tasks.send_weekly_digest",
        "schedule": crontab(day_of_week="mon", hour=env_int("DIGEST_HOUR", 7), minute=0),
    },
    "reports-refresh-rollups": {
        "task": "reports.tasks.refresh_rollups",
        "schedule": crontab(hour=env_int("REPORTS_REFRESH_HOUR", 4), minute=0),
        "options": {"queue": "bulk"},
    },
}

# --- Imports (imports/, docs/IMPORT.md) ---------------------------------------

# Uploaded files wait here until their import is done (and for its error file and undo).
IMPORT_DIR = Path(env_str("IMPORT_DIR", str(VAR_DIR / "imports")))
IMPORT_MAX_FILE_BYTES = env_int("IMPORT_MAX_FILE_BYTES", 512 * 1024 * 1024)
IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", 1_000_000)
# An XLSX is a ZIP: its parts are checked before anything is unpacked (zip bombs).
IMPORT_MAX_XLSX_UNPACKED_BYTES = env_int("IMPORT_MAX_XLSX_UNPACKED_BYTES", 1024 * 1024 * 1024)
IMPORT_MAX_XLSX_RATIO = env_int("IMPORT_MAX_XLSX_RATIO", 100)
# Rows per transaction: a resumed import starts after the last one committed.
IMPORT_CHUNK_ROWS = env_int("IMPORT_CHUNK_ROWS", 1000)
# The region phone numbers written without a country code are read in, when the row
# has no country (ISO code, e.g. DE); empty: such numbers fail their row.
IMPORT_PHONE_REGION = env_str("IMPORT_PHONE_REGION", "")
if IMPORT_CHUNK_ROWS < 1 or IMPORT_MAX_ROWS < 1:
    raise ImproperlyConfigured("IMPORT_CHUNK_ROWS and IMPORT_MAX_ROWS must be at least 1.")

# --- Exports (leads.export_jobs) ---------------------------------------------

# An XLSX export of more leads than this (and any export the caller asks to prepare) is
# written by a worker as an export job, then downloaded; fewer are answered at once.
# CSV streams as it is written whatever its size, and is offered as a job as well.
EXPORT_INLINE_MAX = env_int("HOTLIST_EXPORT_INLINE_MAX", 10_000)
# Where prepared export files wait for their download (shared by web and workers).
EXPORT_DIR = Path(env_str("HOTLIST_EXPORT_DIR", str(VAR_DIR / "exports")))
# How long a prepared file is kept; beat deletes it then.
EXPORT_KEEP_HOURS = env_int("HOTLIST_EXPORT_KEEP_HOURS", 72)
# The longest an export job may run (a million rows of XLSX take about six minutes).
EXPORT_TIME_LIMIT = env_int("HOTLIST_EXPORT_TIME_LIMIT", 3600)
if EXPORT_INLINE_MAX < 0 or EXPORT_KEEP_HOURS < 1 or EXPORT_TIME_LIMIT < 60:
    raise ImproperlyConfigured(
        "HOTLIST_EXPORT_INLINE_MAX must be at least 0, HOTLIST_EXPORT_KEEP_HOURS at least 1 "
        "and HOTLIST_EXPORT_TIME_LIMIT at least 60 (seconds)."
    )

# --- Cache --------------------------------------------------------------------

# Shared by the web processes and the workers (scoring keeps at most one drain task
# queued through it): Redis when the broker is Redis, otherwise files under var/.
CACHE_URL = env_str("CACHE_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "OPTIONS": REDIS_SOCKET_OPTIONS,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Public form submissions (POST /f/<key>/) ---------------------------------

# Larger bodies answer 413; a form post is a few fields, never a file upload.
FORM_MAX_BODY_BYTES = env_int("FORM_MAX_BODY_BYTES", 64 * 1024)
# Posts allowed per window, per address and form and per form; over either answers 429.
FORM_RATE_PER_IP = env_int("FORM_RATE_PER_IP", 10)
FORM_RATE_PER_FORM = env_int("FORM_RATE_PER_FORM", 300)
FORM_RATE_WINDOW_SECONDS = env_int("FORM_RATE_WINDOW_SECONDS", 60)
# Reverse proxies in front of the web processes: the client address is the one the
# outermost of them added to X-Forwarded-For. 0 uses REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# --- Tracking (POST /v1/…, Segment-compatible) --------------------------------

# Segment's own limits: larger messages or batches (decompressed) answer 400.
TRACKING_MAX_MESSAGE_BYTES = env_int("TRACKING_MAX_MESSAGE_BYTES", 32 * 1024)
TRACKING_MAX_BATCH_BYTES = env_int("TRACKING_MAX_BATCH_BYTES", 500 * 1024)
# Requests allowed per window and write key; over it answers 429.
TRACKING_RATE_PER_KEY = env_int("TRACKING_RATE_PER_KEY", 3000)
TRACKING_RATE_WINDOW_SECONDS = env_int("TRACKING_RATE_WINDOW_SECONDS", 60)

# --- Team webhooks (crm/webhooks.py, docs/WEBHOOKS.md) -------------------------

# The address people open Hotlist at; links sent outside the app (webhooks) start with it.
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")
# Plain-http webhooks to localhost, 127.0.0.1 or [::1], for a receiver on this machine
# while developing; off by default whenever DEBUG is.
WEBHOOK_ALLOW_LOCALHOST = env_bool("WEBHOOK_ALLOW_LOCALHOST", DEBUG)


# Webhooks never reach private, loopback, link-local or reserved addresses (the
# database, a cloud metadata service) unless they are in one of these networks, e.g.
# 10.8.0.0/16 for an internal chat server.
WEBHOOK_ALLOWED_NETWORKS = env_networks("WEBHOOK_ALLOWED_NETWORKS")

# --- Hotlist ------------------------------------------------------------------

HOTLIST_HEARTBEAT_STALE_SECONDS = env_int("HEARTBEAT_STALE_SECONDS", 120)
# The stage whose reaching hands a lead to sales, and the hours its owner has to act.
HANDOFF_STAGE = env_str("HANDOFF_STAGE", "sql")
HANDOFF_SLA_HOURS = env_int("HANDOFF_SLA_HOURS", 24)
# PostgreSQL work_mem for one chunk of a set-based rescore (its window sorts).
SCORING_WORK_MEM = env_str("SCORING_WORK_MEM", "64MB")
# Lead ids per range of a set-based rescore: one task on the bulk queue, one transaction
# that holds its leads until it commits (real-time scoring of them waits for it).
SCORING_RESCORE_RANGE = env_int("SCORING_RESCORE_RANGE", 5_000)
# Lead ids per transaction of the nightly decay: real-time scoring of a lead waits for
# at most one such range.
SCORING_DECAY_RANGE = env_int("SCORING_DECAY_RANGE", 5_000)
# Company ids per transaction of the nightly account-score refresh (scoring.accounts).
SCORING_ACCOUNT_RANGE = env_int("SCORING_ACCOUNT_RANGE", 5_000)
# Companies a range of a rescore job sums itself; a range that touched more leaves them to
# one pass over every company when the job ends (summing a company reads all its people,
# and those spread over every range).
SCORING_ACCOUNTS_INLINE = env_int("SCORING_ACCOUNTS_INLINE", 1_000)
# Suggested weights (scoring.suggestions) are fitted only on at least this many won and
# this many lost leads of the model's segment; below it they say how many more are needed.
SCORING_SUGGEST_MIN_CLOSED = env_int("SCORING_SUGGEST_MIN_CLOSED", 30)
# A predictive model (scoring.predictive) is trained on at least this many closed (won or
# lost) leads of the model's segment; below it the rules stay in charge.
PREDICTIVE_MIN_CLOSED = env_int("HOTLIST_PREDICTIVE_MIN_CLOSED", 500)
# How far a decile's observed conversion may stray from the predicted one on the holdout
# (besides its sampling error) for the model to go live.
PREDICTIVE_CALIBRATION_TOLERANCE = env_float("HOTLIST_PREDICTIVE_CALIBRATION_TOLERANCE", 0.05)
if PREDICTIVE_MIN_CLOSED < 20 or not 0 < PREDICTIVE_CALIBRATION_TOLERANCE < 1:
    raise ImproperlyConfigured(
        "HOTLIST_PREDICTIVE_MIN_CLOSED must be at least 20 and "
        "HOTLIST_PREDICTIVE_CALIBRATION_TOLERANCE between 0 and 1."
    )

# --- Nurturing (nurturing/, README "Nurture sequences") -------------------------

# Sender of nurture emails to leads without an owner; owned leads get their owner's address.
NURTURE_DEFAULT_FROM = env_str("NURTURE_DEFAULT_FROM", DEFAULT_FROM_EMAIL)
# At most one nurture email per lead in this many hours, across all sequences; 0: no cap.
NURTURE_FREQUENCY_CAP_HOURS = env_int("NURTURE_FREQUENCY_CAP_HOURS", 48)
# The mail provider's bounce/complaint/reply webhook (POST /n/bounce/) must send this in
# X-Hotlist-Secret; empty turns the webhook off.
NURTURE_BOUNCE_SECRET = env_str("NURTURE_BOUNCE_SECRET")
# Opens and clicks this soon after sending are a scanner's, not the reader's: not scored.
NURTURE_MACHINE_OPEN_SECONDS = env_int("NURTURE_MACHINE_OPEN_SECONDS", 10)
if NURTURE_FREQUENCY_CAP_HOURS < 0 or NURTURE_MACHINE_OPEN_SECONDS < 0:
    raise ImproperlyConfigured(
        "NURTURE_FREQUENCY_CAP_HOURS and NURTURE_MACHINE_OPEN_SECONDS cannot be negative."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
