# syntax=docker/dockerfile:1
# slotlock: a builder stage makes the virtual environment, a slim stage runs it.
# Build: docker build -t slotlock:0.1.0 .   (or buildah build / podman build; .ci/build-image
# builds it with buildah on a locally assembled base and tries it against a real Redis)
# Both stages must use the same Python image: the venv links to its interpreter.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /app
RUN python -m venv /app/.venv

# Dependencies first, pinned by the lock: this layer survives changes to the code.
# Only [project].dependencies are installed, never the dev tools of the lock.
# COPY, not a bind mount: BuildKit, buildah and podman all build it alike.
COPY pyproject.toml requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
 && /app/.venv/bin/pip install --constraint requirements.lock --requirement /tmp/requirements.txt

# The compiler of the request path (service/native.py): gcc and mypy's mypyc, both in
# this stage only (mypy in a venv of its own), so the runtime stage gets the compiled
# modules and neither tool. gcc is Debian's for the base image's release: pinning its
# exact version would break as soon as the mirror moves on.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/mypyc \
 && /opt/mypyc/bin/pip install --constraint requirements.lock mypy setuptools

# Then the project itself, installed in place (editable) so /app/service and
# /app/lua are the code that runs. Its request path is compiled to C beside its
# sources, checked against the packages of /app/.venv; its bytecode is compiled now
# too (pip compiled the dependencies'): the root filesystem is read-only at run time.
COPY README.md ./
COPY service ./service
COPY lua ./lua
RUN --mount=type=cache,target=/root/.cache/pip \
    /app/.venv/bin/pip install --no-deps --editable . \
 && /opt/mypyc/bin/python -m service.native_build --python-executable /app/.venv/bin/python \
 && /app/.venv/bin/python -m compileall -q --invalidation-mode unchecked-hash service


FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="slotlock" \
      org.opencontainers.image.description="Redis-backed slot-hold service, Overbooked-compatible" \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric identity, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 slotlock \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin slotlock

WORKDIR /app
# Only what runs: the virtual environment, the package and its Lua scripts
# (owned by root, so the service cannot rewrite its own code).
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/service /app/service
COPY --from=builder /app/lua /app/lua

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
EXPOSE 8000

# Kubernetes ignores HEALTHCHECK and uses the Deployment's probes; this serves
# `docker run` and Compose. /healthz never touches Redis.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# One worker per container: scale with pods. REDIS_URL must be set: without it
# the service exits, saying so (the image has neither redis-server nor the
# in-memory store; .dockerignore also leaves out the bench and load-test tools).
# The graceful timeout is what k8s/base/deployment.yaml's termination grace period covers.
CMD ["slotlock", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "1", "--graceful-timeout", "20"]
