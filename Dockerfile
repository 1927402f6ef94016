# syntax=docker/dockerfile:1
# The service image: models (from the faceplugin npm package, checked against models/catalogue.json
# at start) and production dependencies only, running as the unprivileged `node` user.
#
#   docker build -t face-service .
#   docker run -p 8080:8080 -v face-data:/data face-service

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
# TypeScript runs through tsx (a dependency); `npm test` type-checks before anything ships.
RUN npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    FACE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json .npmrc ./
COPY gen ./gen
COPY src ./src
COPY migrations ./migrations
COPY models ./models
COPY public ./public
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Migrations apply on start; SIGTERM drains in-flight requests (FACE_SHUTDOWN_TIMEOUT_MS).
CMD ["node", "--import", "tsx", "src/main.ts"]
