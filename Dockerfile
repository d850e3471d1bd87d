# syntax=docker/dockerfile:1
# The one IDIC image: the `idic` binary on Debian bookworm, run as uid 10001.
#   docker build -t idic:0.1.0 .
# Every service, the migration Job and the CronJobs run it (k8s/).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The API is compiled by protox (no protoc); no C libraries are linked.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p idic \
    && install -m 0755 target/release/idic /usr/local/bin/idic

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 idic \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin idic
COPY --from=builder /usr/local/bin/idic /usr/local/bin/idic
USER 10001:10001
# gRPC (server.listen) and Prometheus metrics (telemetry.metrics_listen, off unless set).
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/idic"]
CMD ["--help"]
