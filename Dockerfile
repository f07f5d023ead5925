# One image for every role of the service; the command picks the role:
#   docker run IMAGE serve | repricer | scheduler | crawl [options]   (any `pricing` command)
# Build from the repository root:  docker build -t pricing-service .
# Settings come from the environment (README, "Configuration"); REDIS_URL must point at a
# real Redis: without it a container would start a throwaway embedded one of its own.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder: wheels for the pinned dependencies and the project, then a virtualenv -----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The lock first: this layer is rebuilt only when the pinned dependencies change.
COPY requirements.lock ./
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip wheel --wheel-dir /wheels --requirement requirements.lock
COPY pyproject.toml README.md ./
COPY pricing_service ./pricing_service
COPY crawlers ./crawlers
# --no-deps: the project's dependencies are exactly the locked wheels built above; the
# install below is offline, so anything missing from the lock fails the build here.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-index --find-links /wheels \
        --requirement requirements.lock pricing-service \
 && /opt/venv/bin/pip check

# -- runtime: the virtualenv, the default rules and a health check; no compilers, no pip cache
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" pricing \
 && useradd --system --uid "${UID}" --gid pricing --home-dir /app --shell /usr/sbin/nologin pricing
COPY --from=builder /opt/venv /opt/venv
COPY deploy/healthcheck.py /usr/local/bin/pricing-healthcheck
WORKDIR /app
# The rules in the repository are a default; compose and Kubernetes mount theirs over them.
COPY --chown=pricing:pricing rules ./rules
RUN mkdir -p /app/var && chown pricing:pricing /app/var \
 && chmod 0755 /usr/local/bin/pricing-healthcheck
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PRICING_HOST=0.0.0.0 \
    PRICING_PORT=8000 \
    PRICING_RULES_DIR=/app/rules \
    PRICING_DATA_DIR=/app/var
USER pricing:pricing
# 8000: the API (and its /metrics); 9101, 9102, 9103: the repricer's, scheduler's and first
# crawler worker's /metrics.
EXPOSE 8000 9101 9102 9103
# Answers for whichever role runs: the API's /healthz, or a worker role's /metrics port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "/usr/local/bin/pricing-healthcheck"]
ENTRYPOINT ["pricing"]
CMD ["serve"]
