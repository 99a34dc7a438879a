# Two production images from one file (docker-compose.yml builds both):
#   docker build --target airflow    -t tender-airflow .     scheduler, workers, api-server, ...
#   docker build --target search-api -t tender-search-api .  FastAPI search service, no Airflow
# Neither has torch: the embedder runs on ONNX Runtime, its model ships in
# plugins/tender_pipeline/embed/onnx_model/ (copied with the code).
# No `# syntax=` line: BuildKit would pull that frontend from a registry, and the
# legacy builder (docker-compose v1) must build this file too.
#
# Bases come from registries by default. Where none is reachable, build local
# stand-ins with scripts/docker_local_images.sh and pass them in:
#   --build-arg AIRFLOW_BASE_IMAGE=tender-local/airflow:3.3.2-python3.11 (Airflow from PyPI)
#   --build-arg BASE_IMAGE=tender-local/python:3.11

# Keep in step with requirements.txt (apache-airflow==...); tests/test_compose.py checks that they match.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.11
ARG BASE_IMAGE=python:3.11-slim
# The image a build without --target produces (last stage): Render builds that
# way and passes a service's env vars as build args (render.yaml sets it per service).
ARG IMAGE_TARGET=search-api

# ----------------------------------------------------------------------------- Airflow
FROM ${AIRFLOW_BASE_IMAGE} AS airflow
ARG AIRFLOW_VERSION
# The official image installs into the airflow user's site: never pip as root.
USER airflow
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements/
RUN pip install "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements/requirements.txt \
 && ! python -c "import torch" 2>/dev/null
# The domain package is importable outside Airflow's plugin loading too
# (celery workers' task processes, `python -m tender_pipeline`).
ENV PYTHONPATH=/opt/airflow/plugins:/opt/airflow \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
# tender_alerts evaluates saved searches with the search API's own code (search_api, never Airflow-bound).
COPY --chown=airflow:0 search_api/ /opt/airflow/search_api/
# `airflow db clean` and log retention (compose's airflow-housekeeping service, Render's cron job).
COPY --chown=airflow:0 scripts/airflow_housekeeping.sh /opt/airflow/scripts/airflow_housekeeping.sh

# ----------------------------------------------------------------------------- search API
# Build stage: a venv with the slim pinned set (search_api/requirements.txt, no Airflow).
FROM ${BASE_IMAGE} AS search-api-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY search_api/requirements.txt /tmp/requirements/
RUN pip install -r /tmp/requirements/requirements.txt \
 && ! python -c "import torch" 2>/dev/null \
 && ! python -c "import airflow" 2>/dev/null

# Runtime stage: the venv and our code only, run as an unprivileged user.
FROM ${BASE_IMAGE} AS search-api
# /data is group-0 writable: compose runs this image as the Airflow uid with gid 0, so the API and the
# worker can share the lexical-data volume (tantivy readers take a lock file in the index folder).
RUN useradd --uid 10001 --gid 0 --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data/feedback /data/lexical && chown -R app:0 /data && chmod -R g+rwX /data
COPY --from=search-api-build /opt/venv /opt/venv
COPY plugins/tender_pipeline/ /app/plugins/tender_pipeline/
COPY search_api/ /app/search_api/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/plugins:/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    FEEDBACK_PATH=/data/feedback/feedback.jsonl
WORKDIR /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# nginx in front terminates client connections; trust its X-Forwarded-* headers.
CMD ["uvicorn", "search_api.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--forwarded-allow-ips", "*"]

# ----------------------------------------------------------------------------- default
FROM ${IMAGE_TARGET} AS default
