# syntax=docker/dockerfile:1.7
#
# One file builds every image, one target per service:
#   docker build --target presign -t avatar-pipeline/presign .
# Targets: presign, s3-source, moderate, thumbnail, profile, subscribe, push, and dev-issuer
# (kind only). Each image carries its service's compiled code, the workspace packages it links
# to, and exactly its production dependency closure as npm computes it (npm ls --omit=dev): the
# nsfwjs model and TensorFlow only in moderate, sharp only in moderate and thumbnail.
# Docker with BuildKit and buildah 1.28 (Debian bookworm's podman) both build it, so no heredocs:
# the helper scripts live in docker/. `npm run test:images` builds and runs every target with podman.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

# Every workspace's package.json (npm ci needs them all), so the install layer below is rebuilt
# only when a manifest or the lockfile changes.
FROM base AS manifests
COPY . /src
RUN mkdir /out && cd /src \
 && cp package.json package-lock.json .npmrc /out/ \
 && find . -name package.json -not -path '*/node_modules/*' -exec cp --parents {} /out/ \;

FROM base AS build
COPY --from=manifests /out/ ./
# Prebuilt binaries (sharp's libvips, esbuild) come as optional dependencies; no install scripts run.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY tsconfig.base.json ./
COPY packages packages
COPY services services
COPY local local
# The runtime packages only (the root project also references cdk8s, not in this context).
RUN npx tsc -b packages/*/ services/*/ local
COPY --chmod=755 docker/production-closure.sh /usr/local/bin/production-closure

# What every service image starts from: Node 24, no npm, an unprivileged user, and a directory
# for Node's compile cache, which each service target fills at build time (docker/warm-compile-cache.mjs:
# a cold start reads V8's code cache instead of compiling; with a read-only root file system at
# run time, Node only reads it).
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production PORT=8080 NODE_COMPILE_CACHE=/app/.compile-cache
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && mkdir /app/.compile-cache && chown 10001:10001 /app/.compile-cache
COPY docker/warm-compile-cache.mjs /usr/local/lib/warm-compile-cache.mjs
USER 10001:10001
EXPOSE 8080
# Each service target below sets NODE_OPTIONS and MALLOC_ARENA_MAX as the kit's serviceRuntime says
# (packages/kit/src/runtime.ts: why these values; the local stack starts its processes the same way),
# then warms the compile cache with them (V8's flags are part of its key).

FROM build AS closure-presign
RUN production-closure services/presign
FROM runtime AS presign
COPY --from=closure-presign /out/ ./
ENV NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2
RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/presign"]
CMD ["node", "services/presign/dist/main.js"]

FROM build AS closure-s3-source
RUN production-closure services/s3-source
FROM runtime AS s3-source
COPY --from=closure-s3-source /out/ ./
ENV NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2
RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/s3-source"]
CMD ["node", "services/s3-source/dist/main.js"]

FROM build AS closure-moderate
RUN production-closure services/moderate
FROM runtime AS moderate
COPY --from=closure-moderate /out/ ./
ENV NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2
RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/moderate"]
CMD ["node", "services/moderate/dist/main.js"]

FROM build AS closure-thumbnail
RUN production-closure services/thumbnail
FROM runtime AS thumbnail
COPY --from=closure-thumbnail /out/ ./
ENV NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2
RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/thumbnail"]
CMD ["node", "services/thumbnail/dist/main.js"]

FROM build AS closure-profile
RUN production-closure services/profile
FROM runtime AS profile
COPY --from=closure-profile /out/ ./
ENV NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2
RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/profile"]
# profile also runs the reconciler CronJob: `node services/profile/dist/reconcile-main.js`.
CMD ["node", "services/profile/dist/main.js"]

FROM build AS closure-subscribe
RUN production-closure services/subscribe
FROM runtime AS subscribe
COPY --from=closure-subscribe /out/ ./
ENV NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2
RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/subscribe"]
CMD ["node", "services/subscribe/dist/main.js"]

# push also runs the VAPID init Job: `node packages/webpush/dist/init.js` (vapid is in its closure).
FROM build AS closure-push
RUN production-closure services/push
FROM runtime AS push
COPY --from=closure-push /out/ ./
ENV NODE_OPTIONS=--max-semi-space-size=1 MALLOC_ARENA_MAX=2
RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/push"]
CMD ["node", "services/push/dist/main.js"]

# kind only: the dev token issuer from the local package, behind the kit's HTTP shell.
FROM build AS closure-dev-issuer
RUN production-closure local
FROM runtime AS dev-issuer
COPY --from=closure-dev-issuer /out/ ./
COPY docker/dev-issuer.mjs ./
CMD ["node", "dev-issuer.mjs"]
