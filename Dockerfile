# syntax=docker/dockerfile:1
#
# DonTouch Signal: one image holding all three binaries.
#   dontouch-signal  both services in one process (the default command)
#   asset-service    the Asset Service alone (port 8082)
#   alert-service    the Alert Service alone (port 8083)
# docker-compose.yml runs the same image twice with different commands.
#
#   docker build -t dontouch-signal .
#   docker run --rm -p 8082:8082 -p 8083:8083 dontouch-signal dontouch-signal --demo
#
# No secret is baked in: every setting comes from SIGNAL_* environment variables at run time.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

# librdkafka is compiled from source by rdkafka-sys: it needs a C toolchain, make, perl/bash,
# pkg-config and the zlib headers. The rust image has the compilers; add the rest.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config zlib1g-dev make perl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The registry and target caches survive between builds (BuildKit cache mounts); the binaries
# are copied out of the cached target directory, which is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p dontouch-signal --bins \
 && mkdir -p /out \
 && cp target/release/dontouch-signal target/release/asset-service target/release/alert-service /out/

# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# CA certificates for TLS to the exchanges (rustls reads the system store or its own roots);
# curl for the container health check of /health/ready.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --system --gid "${APP_GID}" signal \
 && useradd --system --uid "${APP_UID}" --gid signal --home-dir /var/lib/signal \
      --shell /usr/sbin/nologin signal \
 && install -d -o signal -g signal -m 0750 /var/lib/signal

COPY --from=builder /out/dontouch-signal /out/asset-service /out/alert-service /usr/local/bin/

# Fail the build if a binary needs a shared library this image lacks.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN for bin in dontouch-signal asset-service alert-service; do \
      if ldd "/usr/local/bin/${bin}" | grep -q 'not found'; then ldd "/usr/local/bin/${bin}"; exit 1; fi; \
    done

# The all-in-one binary keeps its SQLite files and generated token secret in ./data, that is
# /var/lib/signal/data; the standalone services keep nothing on local disk.
WORKDIR /var/lib/signal
USER 10001:10001
ENV SIGNAL_LOG_FORMAT=json

EXPOSE 8082 8083
CMD ["dontouch-signal"]
