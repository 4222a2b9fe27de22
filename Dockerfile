# syntax=docker/dockerfile:1
# Build: the same steps .ci/run runs (install → WASM kernel → single-file executable).
FROM oven/bun:1.4.5 AS build
WORKDIR /src
COPY package.json bun.lock bunfig.toml ./
COPY wasm ./wasm
RUN bun install --frozen-lockfile
COPY . .
RUN bun run build

# Run: one binary, no Bun, no node_modules, as an unprivileged user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /app taskmesh \
 && mkdir -p /app/data /app/models && chown -R taskmesh /app
WORKDIR /app
COPY --from=build /src/dist/taskmesh /app/taskmesh
COPY --from=build --chown=taskmesh /src/models /app/models
USER taskmesh
ENV PORT=3000 HOST=0.0.0.0 DATABASE_URL=sqlite:/app/data/app.sqlite MODELS_DIR=/app/models
EXPOSE 3000
VOLUME ["/app/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/app/taskmesh", "healthcheck"]
STOPSIGNAL SIGTERM
CMD ["/app/taskmesh"]
