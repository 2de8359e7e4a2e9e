# syntax=docker/dockerfile:1
#
# nkpredict HTTP service: a slim, non-root runtime image.
#
#   docker build -t nkpredict .
#   docker run -p 8000:8000 -v "$PWD/models/champion:/models/champion:ro" nkpredict
#
# Bake a model into the image instead of mounting it (the directory must be inside the build
# context and not excluded by .dockerignore):
#
#   docker build --build-arg MODEL_DIR=models/champion -t nkpredict:champion .
#
# Configuration comes from NKP_* variables (NKP_MODEL_URI, NKP_API_KEY, NKP_ADMIN_API_KEY,
# NKP_MAX_BODY_BYTES, NKP_MODEL_THREADS, ...); pass secrets at run time, never as build args.

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------- wheels
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nkpredict ./nkpredict
COPY service ./service
COPY training ./training
# A C compiler for the project's one extension (the body scanner, service/_plain_scan.c);
# the runtime image gets the compiled wheel, not the compiler.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
# The project's wheel and binary wheels of all its dependencies: nothing is compiled later.
RUN pip wheel --wheel-dir /wheels .

# --------------------------------------------------------------------------- optional model
FROM ${PYTHON_IMAGE} AS model
ARG MODEL_DIR=""
RUN --mount=type=bind,target=/context \
    mkdir -p /model && \
    if [ -n "${MODEL_DIR}" ]; then cp -r "/context/${MODEL_DIR}/." /model/; fi

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="nkpredict" \
      org.opencontainers.image.description="Predict and explain NK-cell resistance from expression"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    NKP_MODEL_URI=/models/champion \
    NKP_MODEL_THREADS=1

# XGBoost's wheels need the OpenMP runtime, which the slim image does not have.
# hadolint ignore=DL3008
RUN apt-get update && \
    apt-get install -y --no-install-recommends libgomp1 && \
    rm -rf /var/lib/apt/lists/*

# Installed from the builder's wheels only (bind-mounted: the wheels add no layer).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels nkpredict && \
    useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin nkpredict && \
    mkdir -p /app && chown nkpredict:nkpredict /app

COPY --from=model --chown=10001:10001 /model /models/champion

WORKDIR /app
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]

CMD ["nkpredict", "serve", "--host", "0.0.0.0", "--port", "8000"]
