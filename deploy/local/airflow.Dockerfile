# Stand-in for apache/airflow:<version>-python<py>, built from PyPI on the local
# Python base: the same layout the Dockerfile's `airflow` stage relies on
# (user airflow, uid 50000, gid 0; a venv in /home/airflow/.local first on PATH;
# AIRFLOW_HOME=/opt/airflow; /entrypoint under dumb-init; curl for health checks)
# and the extras of the official image that docker-compose.yml uses (celery,
# postgres, redis, fab for the FAB auth manager; graphviz, without which every
# `airflow` CLI call prints a warning to stdout, ahead of `-o json` output).
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
ARG AIRFLOW_VERSION
ARG FAB_PROVIDER_VERSION
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl dumb-init libpq5 procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow --shell /bin/bash airflow \
 && mkdir -p /opt/airflow/dags /opt/airflow/logs /opt/airflow/plugins /opt/airflow/config \
 && chown -R airflow:0 /opt/airflow && chmod -R g+rwX /opt/airflow /home/airflow
ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW_USER_HOME_DIR=/home/airflow \
    PATH=/home/airflow/.local/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
USER airflow
RUN python -m venv /home/airflow/.local \
 && pip install "apache-airflow[celery,graphviz,postgres,redis]==${AIRFLOW_VERSION}" \
        "apache-airflow-providers-fab==${FAB_PROVIDER_VERSION}" \
 && chmod -R g+rwX /home/airflow/.local
COPY --chown=airflow:0 airflow-entrypoint.sh /entrypoint
WORKDIR /opt/airflow
EXPOSE 8080
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]
CMD []
