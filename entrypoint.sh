#!/bin/sh
# The image's entrypoint, and also every command on its PATH (backup-sidecar, backup, restore, list,
# verify, prune, status, healthcheck are links to this file).
#
# Started as root (the default), it makes the backup volume belong to PUID:PGID and drops to that user
# before running anything, so the daemon and `docker exec backup restore <file>` write files the same
# user owns. Started as any other user (docker run --user, Kubernetes runAsUser), it runs the command as
# that user. As PID 1 it runs the command under tini, which forwards signals and reaps children.
set -eu

CLI=/app/dist/cli.js
COMMANDS=' daemon backup restore list verify prune lifecycle status healthcheck print-config help version --help --version '

die() {
  echo "entrypoint: $*" >&2
  exit 2
}

name=$(basename "$0")
# restore --pitr writes a data folder for the postgres image's user (--pgdata-owner, 999:999): giving
# files to another user takes root, so that one command keeps it (the CLI gives back what it creates in
# the volume).
pitr=false
if [ "$name" = restore ] || [ "${1:-}" = restore ]; then
  for arg in "$@"; do
    case "$arg" in --pitr | --pitr=*) pitr=true ;; esac
  done
fi
case "$name" in
  backup-sidecar) set -- "$CLI" "$@" ;;
  entrypoint.sh)
    # docker run IMAGE [command [args]]: a sidecar command, or any program (sh, psql, pg_restore ...).
    [ $# -gt 0 ] || set -- daemon
    case "$COMMANDS" in *" $1 "*) set -- "$CLI" "$@" ;; esac
    ;;
  *) set -- "$CLI" "$name" "$@" ;;
esac

# PID 1 becomes tini (after setpriv below, so it too runs unprivileged).
if [ $$ = 1 ]; then
  set -- tini -- "$@"
fi

if [ "$(id -u)" = 0 ]; then
  uid=${PUID:-1000}
  gid=${PGID:-1000}
  case "$uid" in '' | *[!0-9]*) die "PUID must be a numeric user id, got \"$uid\" (example: PUID=1000)" ;; esac
  case "$gid" in '' | *[!0-9]*) die "PGID must be a numeric group id, got \"$gid\" (example: PGID=1000)" ;; esac
  if [ "$name" = entrypoint.sh ]; then
    dir=${BACKUP_DIR:-/backups}
    mkdir -p "$dir"
    # Only what is not already theirs: cheap on a large volume, and a read-only mount is left alone.
    if ! find "$dir" \( ! -user "$uid" -o ! -group "$gid" \) -exec chown -h "$uid:$gid" {} + 2>/dev/null; then
      echo "entrypoint: could not give $dir to $uid:$gid; backups will fail if that user cannot write there" >&2
    fi
  fi
  if [ "$uid" != 0 ] && [ "$pitr" = false ]; then
    set -- setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
  fi
fi

exec "$@"
