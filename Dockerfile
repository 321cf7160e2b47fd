# OpenGSLB overwatch image. The image's own Node 24 runs the TypeScript
# sources directly (type stripping); there is no build step.
#
#   docker build -t opengslb .
#   docker run -p 53:53/udp -p 53:53/tcp \
#     -v "$PWD/config.yaml:/etc/opengslb/config.yaml:ro" -v opengslb-state:/var/lib/opengslb opengslb
#
# The config file is mounted, not baked in. It must not be world-writable
# (the server refuses it), and dns.listen_address must not be a loopback
# address, or nothing outside the container reaches it: use "0.0.0.0:53".
# Port 53 works for the non-root user because Docker sets
# net.ipv4.ip_unprivileged_port_start=0 in the container's network namespace;
# on a runtime that does not, grant CAP_NET_BIND_SERVICE or listen on a high port.

FROM node:24-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so a source change does not reinstall them. --omit=dev
# also skips the "node" devDependency that pins Node for local development:
# here the image's Node runs the server.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# Only what runs. The files stay owned by root, so the server cannot change its own code.
COPY src ./src
COPY workers ./workers
COPY config ./config
# The attribution the bundled GeoIP database's licence (CC BY 4.0, DB-IP) asks for.
COPY NOTICE ./

# The state directory (overwatch.data_dir): overrides and last-healthy times in
# an lmdb file. Owned by the server's user; mount a volume to keep it across
# container replacements.
RUN mkdir -p /var/lib/opengslb && chown node:node /var/lib/opengslb && chmod 750 /var/lib/opengslb
VOLUME /var/lib/opengslb

USER node

EXPOSE 53/udp 53/tcp

# SIGTERM (docker stop) stops the server gracefully within 5 s and exits 0;
# SIGHUP (docker kill -s HUP) reloads the config.
# The flag caps V8's young generation and the variable glibc's malloc arenas
# (src/cli/runtime-flags.js says why).
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["node", "--max-semi-space-size=4", "src/cli/opengslb.js"]
CMD ["--config", "/etc/opengslb/config.yaml"]
