#!/bin/sh
# Prometheus reads the Redis exporter's scrape password from a file (prometheus.yml cannot name an
# environment variable): written here to the /tmp tmpfs, readable by Prometheus alone, and the
# variable leaves the program's environment.
set -eu
: "${REDIS_EXPORTER_SCRAPE_PASSWORD:?}"
umask 077
printf '%s' "$REDIS_EXPORTER_SCRAPE_PASSWORD" > /tmp/redis-exporter-scrape.password
unset REDIS_EXPORTER_SCRAPE_PASSWORD
exec /usr/bin/prometheus "$@"
