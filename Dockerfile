# The clusterctl image, built in two stages where a registry is reachable:
# a static musl binary in the Rust Alpine image, then the same scratch
# image as Dockerfile.scratch (which packs a binary built beforehand and is
# what scripts/image builds and tests offline).
#
#   docker build -t clusterctl .
FROM docker.io/library/rust:1.95-alpine AS build
# musl-dev and gcc for the C of aws-lc-rs; protoc for containerd's gRPC API.
RUN apk add --no-cache musl-dev gcc protoc protobuf-dev
WORKDIR /src
COPY . .
RUN cargo build --locked --profile image --bin clusterctl \
 && install -D target/image/clusterctl /out/clusterctl

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="clusterctl" \
      org.opencontainers.image.description="Kubernetes on AWS: provisioning and the in-cluster components" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/clusterctl /usr/local/bin/clusterctl
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/clusterctl"]
