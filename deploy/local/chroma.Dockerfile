# Stand-in for chromadb/chroma: the same server (`chroma run`, Rust, inside the
# pinned chromadb wheel), the same port and data folder. Like the official
# image it has bash but no curl or wget, so a curl health check fails here as it
# would there. Unlike it, it has Python (`chroma` is a Python entry point):
# docker-compose.yml's check uses bash only.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
ARG CHROMA_VERSION
RUN python -m venv /opt/chroma \
 && /opt/chroma/bin/pip install --no-cache-dir --disable-pip-version-check "chromadb==${CHROMA_VERSION}" \
 && mkdir -p /data
ENV PATH=/opt/chroma/bin:$PATH ANONYMIZED_TELEMETRY=False
VOLUME /data
EXPOSE 8000
ENTRYPOINT ["chroma"]
CMD ["run", "--path", "/data", "--host", "0.0.0.0", "--port", "8000"]
