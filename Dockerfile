# The operator's image: `docker build -t <registry>/pinot-operator:0.1.0 .`
# (Not built in this repository's CI, which has no container engine; see README.)
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
