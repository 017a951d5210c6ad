#!/usr/bin/env bash
# The official postgres image's contract, for a Debian-packaged server:
# - on an empty $PGDATA: initdb with POSTGRES_USER / POSTGRES_PASSWORD (scram-sha-256), create
#   POSTGRES_DB, run /docker-entrypoint-initdb.d/* (*.sql with psql, *.sh executed) once;
# - the temporary server used for that listens on the Unix socket only, so nothing can reach the
#   database over TCP (and the TCP healthcheck cannot pass) before initialisation has finished.
# - at every start of the server: pg_hba's rule refusing the superuser over TCP, naming it (below).
set -Eeuo pipefail

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
# pg_hba.conf includes this file first (`include`, so a server without it refuses to start): the
# superuser, whatever POSTGRES_USER names it, signs in on the Unix socket only. Written at every
# start, on the socket directory's tmpfs, from the name initdb was given.
: "${PG_HBA_SUPERUSER_FILE:=/var/run/postgresql/pg_hba.superuser.conf}"

write_superuser_rule() {
  case "$POSTGRES_USER" in
    *'"'* | *$'\n'* | *$'\r'* | /*)
      echo "docker-entrypoint: POSTGRES_USER may not hold a double quote or a line break, nor start with /: pg_hba.conf could not name it" >&2
      exit 1 ;;
  esac
  printf '# Written by docker-entrypoint.sh at the server'"'"'s start: the superuser, never over TCP.\nhost all "%s" all reject\n' \
    "$POSTGRES_USER" > "$PG_HBA_SUPERUSER_FILE"
}

# First: a POSTGRES_USER pg_hba.conf cannot name stops the start before initdb.
if [ "${1:-}" = postgres ]; then
  write_superuser_rule
fi

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  # Passwords come as files (compose secrets, handed out by the secrets service): the superuser's
  # from POSTGRES_PASSWORD_FILE, each role's from pg_password_<role> beside it, read by the init
  # scripts as PG_PASSWORD_<ROLE> (\getenv). They live in the init's environment only: the server
  # started by `exec` below never holds them.
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    if ! POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); then
      echo "docker-entrypoint: cannot read POSTGRES_PASSWORD_FILE ($POSTGRES_PASSWORD_FILE); is the secrets service's volume mounted?" >&2
      exit 1
    fi
    for file in "$(dirname "$POSTGRES_PASSWORD_FILE")"/pg_password_*; do
      [ -e "$file" ] || continue
      name=$(basename "$file" | tr '[:lower:]' '[:upper:]')
      export "$name=$(cat "$file")"
    done
  fi
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "docker-entrypoint: POSTGRES_PASSWORD is not set; set it (see .env.example)." >&2
    exit 1
  fi
  install -d -m 700 "$PGDATA"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null

  # The temporary server: Unix socket only, local trust for the init scripts' own psql calls.
  tmp_hba=$(mktemp)
  printf 'local all all trust\n' > "$tmp_hba"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c hba_file=$tmp_hba" start
  export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --dbname postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "docker-entrypoint: running $f"; psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sh)  echo "docker-entrypoint: running $f"; bash "$f" ;;
      *)     [ -e "$f" ] && echo "docker-entrypoint: ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  rm -f "$tmp_hba"
  unset PGUSER PGHOST POSTGRES_PASSWORD $(compgen -e | grep '^PG_PASSWORD_' || true)
  echo "docker-entrypoint: PostgreSQL init process complete; ready for start up."
fi

exec "$@"
