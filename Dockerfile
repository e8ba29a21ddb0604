# syntax=docker/dockerfile:1
# backup-sidecar: backs up PostgreSQL and media folders into the /backups volume (and S3), restores them.
#
# Build arguments:
#   BASE_IMAGE  a Debian bookworm image with Node.js 24 and npm (default: the official node image).
#   PG_MAJORS   the PostgreSQL client majors to ship; at run time the sidecar picks the server's own
#               major, else the nearest newer one. Keep every major your servers run.
#   PG_APT      "pgdg": the clients come from apt.postgresql.org (all majors); "debian": from Debian's own
#               repository (bookworm has 15 only; for builds that cannot reach apt.postgresql.org).
#   PG_SERVER_MAJORS  off by default: the PostgreSQL server majors (postgres, pg_ctl and their libraries)
#               to add for the PITR drill (verify --restore of a base backup), which starts a throwaway
#               server of the backed-up major. Measured: +56 MB with 15 (ICU, shared by all majors,
#               is 36 MB of it), about 17 MB for each further major.
ARG BASE_IMAGE=node:24-bookworm-slim
ARG PG_MAJORS="13 14 15 16 17 18"
ARG PG_APT=pgdg
ARG PG_SERVER_MAJORS=""

# ---- compile TypeScript, then keep only the production dependencies
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The optional dependencies (the Node binary and a PostgreSQL server for the tests; tsc's native
# compiler) are not needed at run time.
RUN npm run build && npm prune --omit=dev --omit=optional --no-audit --no-fund

# ---- PostgreSQL client binaries of every major, without Debian's perl wrappers; the newest libpq serves
# every major's tools
FROM ${BASE_IMAGE} AS pgclients
ARG PG_MAJORS
ARG PG_APT
ARG PG_SERVER_MAJORS
SHELL ["/bin/sh", "-eu", "-c"]
RUN export DEBIAN_FRONTEND=noninteractive; \
    apt-get update -qq; \
    if [ "$PG_APT" = pgdg ]; then \
      apt-get install -y -qq --no-install-recommends ca-certificates curl; \
      install -d /etc/apt/keyrings; \
      curl -fsSL https://www.postgresql.org/media/keys/ACCC4CF8.asc -o /etc/apt/keyrings/pgdg.asc; \
      . /etc/os-release; \
      echo "deb [signed-by=/etc/apt/keyrings/pgdg.asc] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
      apt-get update -qq; \
    elif [ "$PG_APT" != debian ]; then \
      echo "PG_APT must be pgdg or debian, got \"$PG_APT\"" >&2; exit 1; \
    fi; \
    mkdir /tmp/debs /tmp/x; cd /tmp/debs; \
    for major in $PG_MAJORS; do apt-get download -qq "postgresql-client-$major"; done; \
    for major in $PG_SERVER_MAJORS; do apt-get download -qq "postgresql-$major"; done; \
    apt-get download -qq libpq5; \
    for deb in *.deb; do dpkg-deb -x "$deb" /tmp/x; done; \
    for major in $PG_MAJORS; do \
      install -d "/out/usr/lib/postgresql/$major/bin"; \
      for tool in pg_dump pg_dumpall pg_restore psql pg_basebackup pg_receivewal; do \
        install -m 0755 "/tmp/x/usr/lib/postgresql/$major/bin/$tool" "/out/usr/lib/postgresql/$major/bin/"; \
      done; \
    done; \
    for major in $PG_SERVER_MAJORS; do \
      install -d "/out/usr/lib/postgresql/$major/bin" /out/usr/share/postgresql; \
      install -m 0755 "/tmp/x/usr/lib/postgresql/$major/bin/postgres" "/tmp/x/usr/lib/postgresql/$major/bin/pg_ctl" "/out/usr/lib/postgresql/$major/bin/"; \
      cp -a "/tmp/x/usr/lib/postgresql/$major/lib" "/out/usr/lib/postgresql/$major/"; \
      rm -rf "/out/usr/lib/postgresql/$major/lib/bitcode" "/out/usr/lib/postgresql/$major/lib/llvmjit"*; \
      cp -a "/tmp/x/usr/share/postgresql/$major" /out/usr/share/postgresql/; \
      rm -rf "/out/usr/share/postgresql/$major/man"; \
    done; \
    cd /tmp/x; find usr/lib -name 'libpq.so.5*' -exec cp -a --parents {} /out/ \;

# ---- the runtime image
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG PG_MAJORS
ARG PG_SERVER_MAJORS
LABEL org.opencontainers.image.title="backup-sidecar" \
      org.opencontainers.image.description="Backs up PostgreSQL and media folders into a volume and S3, and restores them safely." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.backup-sidecar.pg-majors="${PG_MAJORS}" \
      io.backup-sidecar.pg-server-majors="${PG_SERVER_MAJORS}"
SHELL ["/bin/sh", "-eu", "-c"]
# tini as PID 1 forwards signals to the daemon and reaps pg_dump and tar; zstd for MEDIA_COMPRESSION;
# the libraries are what pg_dump, pg_restore, psql and libpq link against, and with PG_SERVER_MAJORS what
# the server needs beyond them (ICU, libxml2, the time zones; no LLVM: JIT stays off). npm is not needed at run time.
# The official node image's user "node" holds uid 1000: the user "sidecar" takes its place (Debian's
# own "backup" user is uid 34). "postgres" is 999:999 as in the official postgres image, so compose files
# of docker-postgres-backup-local with `user: postgres:postgres` work.
RUN export DEBIAN_FRONTEND=noninteractive; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends tini zstd \
      libgssapi-krb5-2 libldap-2.5-0 liblz4-1 libreadline8 libssl3 libzstd1 zlib1g \
      ${PG_SERVER_MAJORS:+libicu72 libxml2 tzdata}; \
    apt-get clean; rm -rf /var/lib/apt/lists/*; \
    rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-*; \
    rm -f /usr/local/bin/yarn /usr/local/bin/yarnpkg; \
    if id node >/dev/null 2>&1; then userdel node; fi; \
    if getent group node >/dev/null; then groupdel node; fi; \
    groupadd --gid 1000 sidecar; \
    useradd --uid 1000 --gid 1000 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin sidecar; \
    groupadd --gid 999 postgres; \
    useradd --uid 999 --gid 999 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin postgres
COPY --from=pgclients /out/ /
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
# Every command name is a link to entrypoint.sh, which drops root privileges before running the CLI, so
# `docker exec backup restore <file>` writes into the volume as the same user as the daemon.
RUN chmod 0755 /usr/local/bin/entrypoint.sh; \
    for name in backup-sidecar backup restore list verify prune status healthcheck; do \
      ln -s entrypoint.sh "/usr/local/bin/$name"; \
    done; \
    for bin in /usr/lib/postgresql/*/bin/*; do "$bin" --version >/dev/null; done; \
    tini --version >/dev/null; \
    backup-sidecar --version
ENV NODE_ENV=production \
    BACKUP_DIR=/backups \
    HEALTHCHECK_BIND=0.0.0.0 \
    PUID=1000 \
    PGID=1000
VOLUME /backups
# HEALTHCHECK_PORT serves the status page, /healthz and /metrics when set; the check itself reads the volume.
HEALTHCHECK --interval=1m --timeout=30s --start-period=10m --retries=3 CMD ["healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["daemon"]
