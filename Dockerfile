# One image for all four programs of the pipeline: extractor, tableinator, graphinator and
# demo-api. docker-compose.yml chooses the program with `command:`, e.g.
#
#   docker build -t backfill-pipeline:local .
#   docker run --rm backfill-pipeline:local extractor --help
#
# Stage 1 (builder) installs the project into a virtualenv with pip; stage 2 (runtime) copies
# only that virtualenv onto a clean slim image and runs as a non-root user. All dependencies
# ship binary wheels (psycopg[binary], neo4j-rust-ext, orjson, ...), so no compiler is needed.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Dependencies first, read from pyproject.toml, so this layer is rebuilt only when the
# dependency list changes, not on every source edit. Their versions are bounded there.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# Then the project itself (non-editable, so the runtime stage needs no source tree).
# README.m[d] is a wildcard so that the build also works while there is no README
# (pyproject.toml is listed again only so that the COPY always has a match).
COPY pyproject.toml README.m[d] ./
COPY common ./common
COPY extractor ./extractor
COPY tableinator ./tableinator
COPY graphinator ./graphinator
COPY demoapi ./demoapi
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import common, extractor, tableinator, graphinator, demoapi" \
    && for cmd in extractor tableinator graphinator demo-api; do test -x "/opt/venv/bin/$cmd"; done

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="backfill-pipeline" \
      org.opencontainers.image.description="Backfill paginated APIs into PostgreSQL and Neo4j: extractor, tableinator, graphinator, demo-api."

# METRICS_HOST must be 0.0.0.0 in a container so that Prometheus and the compose healthchecks
# can reach /metrics and /health; every service uses port 9100 inside its own container.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9100

RUN groupadd --system --gid 10001 backfill \
    && useradd --system --uid 10001 --gid backfill --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin backfill \
    && install -d -o backfill -g backfill -m 0755 /app /bulk

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

# 9100: /metrics and /health of every service; 8899: the demo API.
EXPOSE 9100 8899

CMD ["extractor", "--help"]
