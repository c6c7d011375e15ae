# syntax=docker/dockerfile:1
#
# The triage image: one Python package, its pinned dependencies, the `triage`
# command. The default command runs a stream worker; any other subcommand works
# too (`docker run --rm triage:local topics create`).
#
#   docker build -t triage:local .
#
# Every dependency of triage 0.1.0 ships a manylinux wheel for CPython 3.11
# (rocksdict needs glibc >= 2.28), so the build needs no compiler. Settings come
# from TRIAGE_* variables only (docs/settings.md).

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtual environment holding triage and its dependencies ----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/triage
WORKDIR /src
# pyproject.toml pins every direct dependency (==); README.md is its readme.
COPY pyproject.toml README.md ./
COPY triage ./triage
RUN /opt/triage/bin/pip install "pip==26.3" \
 && /opt/triage/bin/pip install . \
 && /opt/triage/bin/pip check

# -- runtime -----------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="triage" \
      org.opencontainers.image.description="Event-driven triage of domestic-violence reports (Faust worker and tools)" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid so that volume ownership is predictable.
RUN groupadd --system --gid 10001 triage \
 && useradd --system --uid 10001 --gid triage --home-dir /var/lib/triage \
        --no-create-home --shell /usr/sbin/nologin triage \
 && install -d -o triage -g triage -m 0750 /var/lib/triage

COPY --from=build /opt/triage /opt/triage

ENV PATH=/opt/triage/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRIAGE_DATA_DIR=/var/lib/triage \
    TRIAGE_METRICS_HOST=0.0.0.0 \
    TRIAGE_METRICS_PORT=9464 \
    TRIAGE_LOG_FORMAT=json

USER triage:triage
WORKDIR /var/lib/triage

# Prometheus /metrics (TRIAGE_METRICS_PORT). Faust's own web server (6066)
# listens on 127.0.0.1 inside the container only.
EXPOSE 9464

# Healthy = /metrics answers. A worker serves it from start-up on, so this says
# "the process is alive", not "it owns partitions": consumer lag and the
# TriageWorkerStalled alert cover the rest.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('TRIAGE_METRICS_PORT', '9464'), timeout=4)"]

ENTRYPOINT ["triage"]
CMD ["worker"]
