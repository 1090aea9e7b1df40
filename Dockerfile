# Builds the ductstream broker. Used by docker-compose.yml; the tests never need Docker.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p ductstream-broker --bins

FROM debian:bookworm-slim
COPY --from=build /src/target/release/ductstream /src/target/release/ductstream-admin /src/target/release/ductstream-worker /usr/local/bin/
VOLUME /data
EXPOSE 9092 8080 9644
ENTRYPOINT ["ductstream", "--kafka-listen", "0.0.0.0:9092", "--data-dir", "/data", "--metrics-listen", "0.0.0.0:9644", "--grpc-listen", "0.0.0.0:8080"]
