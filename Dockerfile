# syntax=docker/dockerfile:1
# The Llamarada API and batch worker (one image; start.sh picks the role).
# Ollama is not in here: it runs as its own container (docker-compose.yml).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- builder: compilers, and every wheel built into a virtual environment -------------------
FROM ${PYTHON_IMAGE} AS builder
# The compilers come from the base image's Debian release, pinned by its tag.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, behind an empty package: this layer is rebuilt
# only when the dependencies change, not on every edit to app/.
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013
RUN mkdir app && touch app/__init__.py \
    && pip install . \
    && rm -rf app build ./*.egg-info

COPY app/ app/
# hadolint ignore=DL3013
RUN pip install --no-deps --force-reinstall . \
    && python -m compileall -q /opt/venv/lib

# ---- runtime: the interpreter, the environment, nothing to build with -----------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LLAMARADA_DATA_DIR=/data \
    PORT=8000
RUN groupadd --system --gid 10001 llamarada \
    && useradd --system --uid 10001 --gid llamarada --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin llamarada \
    && mkdir -p /data \
    && chown llamarada:llamarada /data
COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv/llamarada
COPY --chmod=0755 start.sh ./start.sh
COPY models/ ./models/

USER 10001:10001
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "app.bootstrap", "probe", "/health/live"]
ENTRYPOINT ["/srv/llamarada/start.sh"]
CMD ["serve"]
