#!/bin/sh
# redis_exporter sends its --redis.password to whatever target a /scrape request names. Given a
# password file instead, it signs in only where the file names the target: the stack's Redis, as
# REDIS_USER. The file is on the /tmp tmpfs, readable by the exporter alone; the variable leaves the
# program's environment.
set -eu
: "${REDIS_ADDR:?}" "${REDIS_USER:?}" "${REDIS_PASSWORD:?}"
umask 077
escaped=$(printf '%s' "$REDIS_PASSWORD" | sed 's/\\/\\\\/g; s/"/\\"/g')
printf '{"redis://%s@%s": "%s"}\n' "$REDIS_USER" "${REDIS_ADDR#redis://}" "$escaped" > /tmp/redis-passwords.json
unset REDIS_PASSWORD
exec /usr/bin/prometheus-redis-exporter --redis.password-file=/tmp/redis-passwords.json "$@"
