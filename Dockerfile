# Production image for both services; SERVICE picks which one runs (custody or gateway).
# Build:  docker build --build-arg SERVICE=custody -t card-custody .
# Run it read-only as the unprivileged user: docker run --read-only --tmpfs /tmp ... card-custody
#
# Base: Node 24 LTS on Debian 12, pinned by digest so every build starts from the same bytes. The digest is
# the multi-platform index of node:24.21.0-bookworm-slim (Node 24.21.0, the version `npm test` runs on;
# image built 2026-09-19), as listed in docker-library/repo-info repos/node/remote/24.21.0-bookworm-slim.md
# (commit 3179cb4d). To refresh: pick the newest 24.x tag, then
#   docker buildx imagetools inspect node:24-bookworm-slim        # "Digest:" line = the index digest
# or docker pull node:24-bookworm-slim && docker inspect --format '{{index .RepoDigests 0}}' node:24-bookworm-slim
# put tag and digest below, and run `npm test` on that Node version before shipping.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:0e0ff40c39bc087845bfb27465a0df4ea419520094bc35842ff83dd8cbe6f9b6

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Native addons (pkcs11js, better-sqlite3) compile here, never in the runtime image.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
ARG SERVICE=custody
ENV NODE_ENV=production SERVICE=${SERVICE}
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./
COPY proto ./proto
# The image's own files are root-owned and read-only to the service user.
USER node
CMD ["sh", "-c", "exec node dist/${SERVICE}/main.js"]
