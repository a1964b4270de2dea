# llm-router: the gRPC service on the embedded default (in-process metrics).
# Build: docker build -t llm-router .   (or: --build-arg BASE_IMAGE=<a local python image>)
# A base whose Python is "python3" (Debian's python3 + python3-venv): --build-arg PYTHON=python3.
# scripts/container-check builds and checks it with podman.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ARG PYTHON=python
# Only where a proxy re-signs TLS: a CA bundle for pip, mounted into the build
# (scripts/container-check passes the host's $PIP_CERT this way). Unset by default.
ARG PIP_CERT
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY client ./client
RUN ${PYTHON} -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ".[tracing]"

FROM ${BASE_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin router
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LITELLM_OFFLINE_MODE=true \
    LLM_ROUTER_LISTEN=0.0.0.0:50051
USER 10001
EXPOSE 50051
# --local: the address and TLS settings of the server this container runs, read from its
# own configuration ($LLM_ROUTER_CONFIG, $LLM_ROUTER_LISTEN): plaintext, TLS and tokens
# alike (health needs no token). With mTLS, set LLM_ROUTER_CERT and LLM_ROUTER_KEY too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["llm-router", "health", "--local"]
# Exec form: the server is PID 1 and receives SIGTERM itself.
STOPSIGNAL SIGTERM
ENTRYPOINT ["llm-router", "serve"]
