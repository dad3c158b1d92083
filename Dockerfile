# Production image for both services; SERVICE picks which one runs (custody or gateway).
# Build:  docker build --build-arg SERVICE=custody -t card-custody .
# Run it read-only as the unprivileged user: docker run --read-only --tmpfs /tmp ... card-custody
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Native addons (pkcs11js, better-sqlite3) compile here, never in the runtime image.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
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
