# syntax=docker/dockerfile:1
# One image for every carehub component: `carehub serve <component>` (see docker-compose.yml).
#
#   docker build -t carehub .

# The web client (web/), built to static files the gateway serves (CAREHUB_WEB_DIR).
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci
COPY web/ ./
RUN npm run build

# The carehub binary.
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin carehub \
    && install -m 0755 target/release/carehub /usr/local/bin/carehub

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/carehub --create-home carehub \
    && mkdir -p /keys && chown carehub /keys
COPY --from=build /usr/local/bin/carehub /usr/local/bin/carehub
COPY --from=web /src/web/dist /usr/share/carehub/web
ENV CAREHUB_WEB_DIR=/usr/share/carehub/web \
    CAREHUB_DATA_DIR=/var/lib/carehub \
    CAREHUB_LOG_JSON=true
USER carehub
WORKDIR /var/lib/carehub
ENTRYPOINT ["carehub"]
CMD ["--help"]
