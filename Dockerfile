# OpenGSLB overwatch image: the npm package (what `npm pack` ships: the
# JavaScript built from the TypeScript sources, docs, example configs) with its
# locked production dependencies, a default config and a state volume.
# docs/docker.md says how to run it; in short:
#
#   docker build -t opengslb .
#   docker run -d --name opengslb -p 53:53/udp -p 53:53/tcp -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/config.yaml:/etc/opengslb/config.yaml:ro" -v opengslb-state:/var/lib/opengslb \
#     -e OPENGSLB_API_TOKEN opengslb
#
# Port 53 works for the non-root user because Docker sets
# net.ipv4.ip_unprivileged_port_start=0 in the container's network namespace;
# on a runtime that does not, add --cap-add NET_BIND_SERVICE or listen on a high port.

# Stage 1: the package. `npm pack` runs the prepack build (scripts/build-dist.ts:
# Node's own type stripping, no dependencies needed) and writes the tarball,
# so the image runs exactly what an `npm install` of that tarball runs.
FROM node:24-slim AS package
# The prepack build also compiles the batched-UDP addon (native/udp_batch.c,
# node-gyp) into native/prebuilds/: it needs python3, make and a C compiler,
# in this stage only. The image itself gets just the binary, in the tarball.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm pack --pack-destination /pkg && mv /pkg/opengslb-*.tgz /pkg/opengslb.tgz

# Stage 2: the image.
FROM node:24-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so a code change does not reinstall them. --omit=dev
# also skips the "node" devDependency that pins Node for local development:
# here the image's Node runs the server.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# The package's files, owned by root, so the server cannot change its own code.
COPY --from=package /pkg/opengslb.tgz /tmp/opengslb.tgz
RUN tar -xzf /tmp/opengslb.tgz -C /app --strip-components=1 --no-same-owner && rm /tmp/opengslb.tgz

# The default config: a demo zone, the admin API and metrics on all addresses,
# state in the volume. Mount your own over it (docs/docker.md).
COPY deploy/docker/config.yaml /etc/opengslb/config.yaml

# The state directory (overwatch.data_dir): overrides and last-healthy times in
# an lmdb file. Owned by the server's user; mount a volume to keep it across
# container replacements.
RUN mkdir -p /var/lib/opengslb && chown node:node /var/lib/opengslb && chmod 750 /var/lib/opengslb
VOLUME /var/lib/opengslb

USER node

# DNS, the admin API (api.address) and Prometheus metrics (metrics.address) of the default config.
EXPOSE 53/udp 53/tcp 8080/tcp 9090/tcp

# Healthy once /api/v1/ready answers 200: DNS listens and the first health
# round is done (503 before). A config that moves or disables the API sets
# OPENGSLB_READY_URL (docker run -e) or runs with --no-healthcheck.
ENV OPENGSLB_READY_URL=http://127.0.0.1:8080/api/v1/ready
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.OPENGSLB_READY_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# SIGTERM (docker stop) stops the server gracefully within 5 s and exits 0;
# SIGHUP (docker kill -s HUP) reloads the config.
# The flag caps V8's young generation and the variable glibc's malloc arenas
# (src/cli/runtime-flags.js says why).
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["node", "--max-semi-space-size=4", "--heap-growing-percent=25", "src/cli/opengslb.js"]
CMD ["--config", "/etc/opengslb/config.yaml"]
