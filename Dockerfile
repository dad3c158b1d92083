# Production images of both services, one target each:
#   docker build --target custody -t card-custody .
#   docker build --target custody --build-arg WITH_SOFTHSM=1 -t card-custody:softhsm .   # + SoftHSM2
#   docker build --target gateway -t card-gateway .
# Run them read-only as the numeric user below, with core dumps off for custody:
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges --ulimit core=0 \
#     -v /srv/custody-secrets:/run/secrets/custody:ro -v custody-audit:/var/lib/custody-audit card-custody
# deploy/ has a compose file and Kubernetes manifests that do all of this; docs/operations.md explains it.
# What these commands produce is tested without a Docker engine: src/tools/deploy/dockerfile.test.ts reads
# this file, src/custody/production-build.test.ts runs the build stage's commands and both services.
#
# Base: Node 24 LTS on Debian 12, pinned by digest so every build starts from the same bytes. The digest is
# the multi-platform index of node:24.21.0-bookworm-slim (Node 24.21.0, the version `npm test` runs on;
# image built 2026-09-19), as listed in docker-library/repo-info repos/node/remote/24.21.0-bookworm-slim.md
# (commit 3179cb4d). To refresh: pick the newest 24.x tag, then
#   docker buildx imagetools inspect node:24-bookworm-slim        # "Digest:" line = the index digest
# or docker pull node:24-bookworm-slim && docker inspect --format '{{index .RepoDigests 0}}' node:24-bookworm-slim
# put tag and digest below, set NODE_VERSION_WANTED in scripts/node-runtime.sh to the same release, and run
# `npm test` on it before shipping.
# A distroless Node 24 base would drop the shell and dpkg too, but it cannot take the SoftHSM2 package and
# runs another glibc than the one the native addons are built against here; the slim base is stripped
# instead (runtime stage below).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:0e0ff40c39bc087845bfb27465a0df4ea419520094bc35842ff83dd8cbe6f9b6
# 1 = the custody image carries SoftHSM2 (a software PKCS#11 token, for staging and HSM drills; docs/hsm.md).
ARG WITH_SOFTHSM=0

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Native addons (pkcs11js, better-sqlite3) compile here, never in the runtime image.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/check-layers.mjs ./scripts/
COPY proto ./proto
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# What both services run on: the base without Node's package managers (npm, npx, corepack, yarn) or the
# image's shell entrypoint script.
FROM ${NODE_IMAGE} AS runtime
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* /usr/local/bin/docker-entrypoint.sh
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./
COPY proto ./proto
COPY deploy/healthcheck.mjs ./healthcheck.mjs
ENV NODE_ENV=production

FROM runtime AS softhsm-0

FROM runtime AS softhsm-1
RUN apt-get update && apt-get install -y --no-install-recommends softhsm2 && rm -rf /var/lib/apt/lists/* \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/softhsm/tokens \
    && printf 'directories.tokendir = /var/lib/softhsm/tokens\nobjectstore.backend = file\n' > /etc/softhsm/softhsm2.conf
ENV SOFTHSM2_CONF=/etc/softhsm/softhsm2.conf
# The token is state: it lives on a volume, never in the read-only image.
VOLUME ["/var/lib/softhsm/tokens"]

FROM softhsm-${WITH_SOFTHSM} AS custody
# The audit chain (CUSTODY_AUDIT_FILE) is the one thing custody writes: its own volume, owned by the service user.
RUN ["/usr/bin/install", "-d", "-o", "10001", "-g", "10001", "-m", "0700", "/var/lib/custody-audit"]
# No shell and no package manager left for an intruder to drive (exec form: this step needs no shell).
RUN ["/usr/bin/rm", "-f", "/usr/bin/sh", "/usr/bin/dash", "/usr/bin/bash", "/usr/bin/rbash", "/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/apt-cache", "/usr/bin/apt-config", "/usr/bin/apt-mark", "/usr/bin/dpkg", "/usr/bin/dpkg-deb", "/usr/bin/dpkg-query", "/usr/bin/dpkg-split", "/usr/bin/dpkg-divert", "/usr/bin/dpkg-trigger", "/usr/bin/dpkg-statoverride", "/usr/bin/dpkg-maintscript-helper", "/usr/bin/dpkg-realpath"]
# Keys, TLS files and policy are mounted read-only here; custody writes only its audit chain.
ENV CUSTODY_ENV=production \
    CUSTODY_LISTEN=0.0.0.0:7443 \
    CUSTODY_TLS_CERT=/run/secrets/custody/tls/tls.crt \
    CUSTODY_TLS_KEY=/run/secrets/custody/tls/tls.key \
    CUSTODY_TLS_CLIENT_CA=/run/secrets/custody/tls/client-ca.crt \
    CUSTODY_KEY_DIR=/run/secrets/custody/keys \
    CUSTODY_AUDIT_FILE=/var/lib/custody-audit/audit.jsonl
VOLUME ["/run/secrets/custody", "/var/lib/custody-audit"]
EXPOSE 7443
USER 10001:10001
STOPSIGNAL SIGTERM
# gRPC health over mTLS when HEALTHCHECK_TLS_CERT/_KEY/_CA name a probe identity, else a TCP connect.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/node", "/app/healthcheck.mjs", "custody"]
ENTRYPOINT ["/usr/local/bin/node"]
CMD ["dist/custody/main.js"]

FROM runtime AS gateway
RUN ["/usr/bin/install", "-d", "-o", "10001", "-g", "10001", "-m", "0700", "/var/lib/card-gateway"]
RUN ["/usr/bin/rm", "-f", "/usr/bin/sh", "/usr/bin/dash", "/usr/bin/bash", "/usr/bin/rbash", "/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/apt-cache", "/usr/bin/apt-config", "/usr/bin/apt-mark", "/usr/bin/dpkg", "/usr/bin/dpkg-deb", "/usr/bin/dpkg-query", "/usr/bin/dpkg-split", "/usr/bin/dpkg-divert", "/usr/bin/dpkg-trigger", "/usr/bin/dpkg-statoverride", "/usr/bin/dpkg-maintscript-helper", "/usr/bin/dpkg-realpath"]
# The SQLite store (single instance) is the only thing the gateway writes; with PostgreSQL it writes nothing.
ENV GATEWAY_ENV=production \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_SQLITE_PATH=/var/lib/card-gateway/gateway.sqlite \
    GATEWAY_CUSTODY_CA_FILE=/run/secrets/gateway/custody-ca.crt \
    GATEWAY_CUSTODY_CERT_FILE=/run/secrets/gateway/tls.crt \
    GATEWAY_CUSTODY_KEY_FILE=/run/secrets/gateway/tls.key
VOLUME ["/var/lib/card-gateway", "/run/secrets/gateway"]
EXPOSE 8080
USER 10001:10001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/node", "/app/healthcheck.mjs", "gateway"]
ENTRYPOINT ["/usr/local/bin/node"]
CMD ["dist/gateway/main.js"]
