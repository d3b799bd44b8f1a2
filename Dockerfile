# syntax=docker/dockerfile:1
# chatwire's container image: a Rust build stage, then a minimal runtime
# (distroless: glibc, libgcc, CA certificates, no shell, no package manager),
# running as a non-root user. Build from the repository root:
#   docker build -t chatwire:0.1.0 .
# scripts/ci-deploy.sh checks that the build command below is the one CI runs,
# and that the build context (see .dockerignore) holds what it needs.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# protoc comes vendored from a crate; nothing else to install.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin chatwire

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/chatwire /usr/local/bin/chatwire
# 65532 is distroless's `nonroot` user; the Kubernetes manifests run as it too.
USER 65532:65532
# gRPC (CHATWIRE_ADDR), and the plaintext health-only listener (CHATWIRE_HEALTH_ADDR) if enabled.
EXPOSE 50051 50052
# The default 127.0.0.1:50051 is unreachable from outside a container: set
# CHATWIRE_ADDR=0.0.0.0:50051 with callers' tokens (CHATWIRE_API_KEYS or
# [auth] tokens_file), or --insecure-no-auth behind a mesh that authenticates.
ENTRYPOINT ["/usr/local/bin/chatwire"]
CMD ["serve"]
