#!/bin/sh
# Production mode (TSE_MODE=production): the alert receiver serves HTTPS only, so the running
# Alertmanager reads a copy of alertmanager.yml (in /tmp) whose webhook uses https:// and verifies
# the receiver's certificate and name against the stack's CA. Its own web server's TLS comes with
# its web configuration (--web.config.file, made by the secrets service).
set -eu
if [ "${TSE_MODE:-development}" = production ]; then
  config=/etc/alertmanager/alertmanager.yml
  sed -e 's|^      - url: http://alert-receiver:|      - url: https://alert-receiver:|' \
      -e 's|^        http_config:$|        http_config:\n          tls_config: {ca_file: /run/secrets/ca.crt}|' \
      "$config" > /tmp/alertmanager.yml
  for argument do
    shift
    [ "$argument" = "--config.file=$config" ] && argument=--config.file=/tmp/alertmanager.yml
    set -- "$@" "$argument"
  done
fi
exec /usr/bin/prometheus-alertmanager "$@"
