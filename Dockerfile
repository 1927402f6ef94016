# syntax=docker/dockerfile:1
# The service image: compiled JavaScript (tsc), production dependencies only, onnxruntime-node's
# binaries for the image's own platform only, the model files checked against models/catalogue.json
# (committed ones, and those scripts/postinstall.mjs fetches from their npm tarball), running as the
# unprivileged `node` user on Node 24 LTS. The project itself also runs on Node 20.
#
#   docker build -t face-service .
#   docker run -p 8080:8080 -v face-data:/data face-service

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY scripts ./scripts
COPY models ./models
# The postinstall script fetches the npm-sourced models and drops other platforms' onnxruntime binaries.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gen ./gen
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    FACE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/models ./models
# dist/ mirrors the source tree (src/, gen/), so paths relative to a module (migrations/, models/,
# public/) are the same compiled as from source.
COPY --from=build /app/dist/src ./src
COPY --from=build /app/dist/gen ./gen
COPY package.json .npmrc ./
COPY migrations ./migrations
COPY public ./public
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Migrations apply on start; SIGTERM drains in-flight requests (FACE_SHUTDOWN_TIMEOUT_MS).
CMD ["node", "src/main.js"]
