# syntax=docker/dockerfile:1
# One image recipe for every berth service, parameterized by the app:
#   docker build --build-arg APP=discovery --target service .
#   docker build --build-arg APP=workspace-agent --target workspace .
# APP is one of discovery, session, reaper, task-watcher, webhooks, workspace-agent. The target `service`
# is a plain Node image; `workspace` adds git and the /workspace mount point. Build context:
# the repository root, filtered by .dockerignore (and further per app by infra/src/images.ts
# when `cdk deploy` stages it).
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# npm ci checks every workspace manifest against the lock file, so all of them come in;
# no workspace source does. --omit=dev: the local engines and every dev tool stay out (see
# docs/deploy.md for what remains). --ignore-scripts: no production dependency has an
# install script, and none may run one unseen.
COPY package.json package-lock.json ./
COPY apps/cli/package.json apps/cli/
COPY apps/discovery/package.json apps/discovery/
COPY apps/local-runtime/package.json apps/local-runtime/
COPY apps/reaper/package.json apps/reaper/
COPY apps/session/package.json apps/session/
COPY apps/task-watcher/package.json apps/task-watcher/
COPY apps/webhooks/package.json apps/webhooks/
COPY apps/workspace-agent/package.json apps/workspace-agent/
COPY infra/package.json infra/
COPY libs/adapters/dynamodb/package.json libs/adapters/dynamodb/
COPY libs/adapters/ecs/package.json libs/adapters/ecs/
COPY libs/adapters/messaging/package.json libs/adapters/messaging/
COPY libs/core/package.json libs/core/
COPY libs/domain/package.json libs/domain/
COPY libs/platform/package.json libs/platform/
COPY libs/testing/package.json libs/testing/
COPY libs/webhook-signature/package.json libs/webhook-signature/
COPY tools/package.json tools/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# What every service image holds: production node_modules, the libraries and the app's own
# sources, owned by root and read-only to the service (the process cannot rewrite its code).
FROM ${NODE_IMAGE} AS base
ARG APP
RUN test -n "${APP}" || (echo 'build-arg APP is required (discovery, session, reaper, task-watcher, webhooks, workspace-agent)' >&2 && exit 1)
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY libs/domain/package.json libs/domain/
COPY libs/domain/src libs/domain/src/
COPY libs/core/package.json libs/core/
COPY libs/core/src libs/core/src/
COPY libs/platform/package.json libs/platform/
COPY libs/platform/src libs/platform/src/
COPY libs/adapters/dynamodb/package.json libs/adapters/dynamodb/
COPY libs/adapters/dynamodb/src libs/adapters/dynamodb/src/
COPY libs/adapters/ecs/package.json libs/adapters/ecs/
COPY libs/adapters/ecs/src libs/adapters/ecs/src/
COPY libs/adapters/messaging/package.json libs/adapters/messaging/
COPY libs/adapters/messaging/src libs/adapters/messaging/src/
COPY libs/webhook-signature/package.json libs/webhook-signature/
COPY libs/webhook-signature/src libs/webhook-signature/src/
COPY apps/${APP}/package.json apps/${APP}/
COPY apps/${APP}/src apps/${APP}/src/
# The exec form cannot expand a variable: the entry point is fixed at build time.
RUN ln -s "apps/${APP}/src/main.ts" main.ts

# discovery, session, reaper, task-watcher.
FROM base AS service
USER node
EXPOSE 8080
# Node 24 runs the TypeScript sources directly (type stripping): there is no build output.
CMD ["node", "main.ts"]

# The workspace agent: git for the workspace (clone, worktrees, commit, push); certificates
# and ssh for its remotes.
FROM base AS workspace
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*
# The workspace volume (EFS) is mounted here through an access point that acts as uid 1000.
RUN mkdir -p /workspace && chown node:node /workspace
USER node
CMD ["node", "main.ts"]
