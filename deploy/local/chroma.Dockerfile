# Stand-in for chromadb/chroma: the same server (`chroma run`, Rust, inside the
# pinned chromadb wheel), the same port, data folder and curl for health checks.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
ARG CHROMA_VERSION
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && python -m venv /opt/chroma \
 && /opt/chroma/bin/pip install --no-cache-dir --disable-pip-version-check "chromadb==${CHROMA_VERSION}" \
 && mkdir -p /data
ENV PATH=/opt/chroma/bin:$PATH ANONYMIZED_TELEMETRY=False
VOLUME /data
EXPOSE 8000
ENTRYPOINT ["chroma"]
CMD ["run", "--path", "/data", "--host", "0.0.0.0", "--port", "8000"]
