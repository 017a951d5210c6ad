#!/bin/sh
# Production mode (TSE_MODE=production): PostgreSQL accepts TLS only, so the exporter connects with
# sslmode=verify-full, checking the server's certificate and name against the stack's CA (handed out
# by the secrets service), in place of DATA_SOURCE_URI's sslmode.
set -eu
if [ "${TSE_MODE:-development}" = production ]; then
  DATA_SOURCE_URI="${DATA_SOURCE_URI%%\?*}?sslmode=verify-full&sslrootcert=/run/secrets/ca.crt"
  export DATA_SOURCE_URI
fi
exec /usr/bin/prometheus-postgres-exporter "$@"
