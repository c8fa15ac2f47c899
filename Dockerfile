# Hotlist web, worker and beat image: one image, the command picks the process.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOTLIST_VAR_DIR=/var/lib/hotlist

WORKDIR /app
RUN useradd --create-home --uid 1000 hotlist \
    && mkdir -p /var/lib/hotlist && chown hotlist /var/lib/hotlist

COPY pyproject.toml README.md ./
COPY crm crm
COPY leads leads
COPY scoring scoring
COPY nurturing nurturing
COPY reports reports
COPY imports imports
COPY workspace workspace
COPY studio studio
COPY api api
COPY demo demo
RUN pip install .

COPY manage.py ./
COPY templates templates
COPY static static
RUN DEBUG=false SECRET_KEY=build-only python manage.py collectstatic --no-input -v 0

USER hotlist
EXPOSE 8000
CMD ["gunicorn", "--config", "python:crm.gunicorn_config", "crm.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2"]
