# syntax=docker/dockerfile:1
#
# The Terarium taskrunner as one self-contained binary.
#
#   docker build -t taskrunner .
#   docker run --rm -e TERARIUM_MQ_ADDRESSES=amqp://rabbitmq:5672 \
#     -e TERARIUM_TASKRUNNER_REQUEST_TYPE=echo taskrunner
#
# Task images do not run this image: they take the binary from it with
#
#   COPY --from=ghcr.io/darpa-askem/taskrunner:latest /usr/local/bin/taskrunner /usr/local/bin/taskrunner
#
# (see examples/task-image/Dockerfile). Multi-platform builds work without emulation:
# the build stage runs on the build machine and cross-compiles for the target platform.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t taskrunner .

ARG DENO_VERSION=2.9.6

# ---------------------------------------------------------------------------
# Build stage: compile main.ts and its dependencies into one executable.
# ---------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM denoland/deno:${DENO_VERSION} AS build

# Set by BuildKit to the platform being built (amd64 or arm64).
ARG TARGETARCH

WORKDIR /app

# Dependencies first, so this layer is cached until deno.json or deno.lock change.
# --frozen: fail instead of updating the lock file when it does not match deno.json.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY main.ts ./
COPY src/ ./src/

# Same permission flags as `deno task compile` (deno.json) and scripts/build.ts.
RUN case "${TARGETARCH:-amd64}" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported TARGETARCH: ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && deno compile --frozen \
      --allow-read --allow-write --allow-run --allow-net --allow-env --allow-ffi --allow-sys \
      --v8-flags=--max-semi-space-size=8 \
      --target "${target}" \
      --output /taskrunner main.ts

# ---------------------------------------------------------------------------
# Final stage: the binary, tini and nothing else of note.
#
# Why debian:bookworm-slim and not alpine or distroless:
# - the compiled binary is a glibc program (Deno's runtime, denort, is built for
#   *-unknown-linux-gnu only), so musl-based alpine cannot run it without a glibc shim;
# - gcr.io/distroless/cc has glibc but no package manager for tini and no shell, and
#   this image doubles as a minimal runner for executables installed on top of it
#   (Python scripts need a python3 in the image anyway; see examples/task-image).
#   Slim Debian is the same libc family as the python:*-slim images task images use.
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

# tini as PID 1 reaps orphaned grandchildren of tasks and forwards signals.
# ca-certificates: only needed with DENO_TLS_CA_STORE=system (amqps with a private CA).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /taskrunner /usr/local/bin/taskrunner

# A fixed non-root uid/gid, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 taskrunner \
 && useradd --system --uid 10001 --gid taskrunner --home-dir /home/taskrunner \
      --create-home --shell /usr/sbin/nologin taskrunner
USER 10001:10001
WORKDIR /home/taskrunner

# The HTTP endpoint (/healthz, /readyz, /metrics) is on by default in the image.
# Broker and queue settings (TERARIUM_MQ_*, TERARIUM_TASKRUNNER_*) are set at run time.
ENV TERARIUM_TASKRUNNER_HTTP_PORT=9090

EXPOSE 9090

# Liveness only (the process answers HTTP). Readiness (/readyz: broker connected) is for
# orchestrators: see examples/docker-compose.yml and examples/kubernetes/deployment.yaml.
# bash's /dev/tcp is used because the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${TERARIUM_TASKRUNNER_HTTP_PORT:-9090} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

# No `tini -g`: SIGTERM goes to the runner alone, which stops taking requests, lets running
# tasks finish (drain period) and only then signals their process groups itself.
ENTRYPOINT ["tini", "--"]
CMD ["taskrunner", "serve"]
