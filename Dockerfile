# The operator's image with a container engine: `docker build -t <registry>/pinot-operator:0.1.0 .`
# Without one, `make image` builds an equivalent image (the binary, its shared libraries, the CA bundle,
# user 65532, FROM scratch instead of distroless/cc) with umoci, and `make push REGISTRY=<registry>`
# publishes it as <registry>/pinot-operator:<version> with skopeo (deploy/image/; README). That is
# the way this repository builds and tests it; this file is not used by its CI.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the toolchain and adds the wasm32-wasip2 target the bundled policies
# are built for (host/build.rs).
RUN cargo build --release --locked -p pinot-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/pinot-operator /usr/local/bin/pinot-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pinot-operator"]
