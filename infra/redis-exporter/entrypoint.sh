#!/bin/sh
# redis_exporter sends its --redis.password to whatever target a /scrape request names. Given a
# password file instead, it signs in only where the file names the target: the stack's Redis, as
# REDIS_USER. The password comes from the secret file REDIS_PASSWORD_FILE; the map is written to the
# /tmp tmpfs, readable by the exporter alone.
# Its web password (HTTP Basic, Prometheus's credential) can only be given as a flag or variable
# (1.69 reads no file for it): read from REDIS_EXPORTER_BASIC_AUTH_PASSWORD_FILE into the program's
# environment, which the container's configuration (`docker inspect`) never shows.
set -eu
: "${REDIS_ADDR:?}" "${REDIS_USER:?}" "${REDIS_PASSWORD_FILE:?}" "${REDIS_EXPORTER_BASIC_AUTH_PASSWORD_FILE:?}"
# Production mode (TSE_MODE=production): Redis speaks TLS only, so rediss://, verifying its
# certificate (and name) against the stack's CA, handed out by the secrets service.
scheme=redis
if [ "${TSE_MODE:-development}" = production ]; then
  scheme=rediss
  REDIS_ADDR="rediss://${REDIS_ADDR#redis://}"
  REDIS_EXPORTER_TLS_CA_CERT_FILE=/run/secrets/ca.crt
  # And it serves HTTPS (TLS 1.2 at least, its default), with the certificate made for it.
  REDIS_EXPORTER_TLS_SERVER_CERT_FILE=/run/secrets/tls.crt
  REDIS_EXPORTER_TLS_SERVER_KEY_FILE=/run/secrets/tls.key
  export REDIS_ADDR REDIS_EXPORTER_TLS_CA_CERT_FILE REDIS_EXPORTER_TLS_SERVER_CERT_FILE REDIS_EXPORTER_TLS_SERVER_KEY_FILE
fi
umask 077
escaped=$(sed 's/\\/\\\\/g; s/"/\\"/g' "$REDIS_PASSWORD_FILE")
printf '{"%s://%s@%s": "%s"}\n' "$scheme" "$REDIS_USER" "${REDIS_ADDR#*://}" "$escaped" > /tmp/redis-passwords.json
REDIS_EXPORTER_BASIC_AUTH_PASSWORD=$(cat "$REDIS_EXPORTER_BASIC_AUTH_PASSWORD_FILE")
export REDIS_EXPORTER_BASIC_AUTH_PASSWORD
exec /usr/bin/prometheus-redis-exporter --redis.password-file=/tmp/redis-passwords.json "$@"
