#!/bin/sh
# Run once by the official postgres image when it creates the cluster (/docker-entrypoint-initdb.d/):
# lets POSTGRES_USER (a superuser, so it has REPLICATION) open replication connections over the network,
# which backup-sidecar's WAL_ARCHIVE (pg_receivewal, pg_basebackup) needs. "host all all all" does not
# cover replication. Narrow "all" to the compose network's subnet if you know it.
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
