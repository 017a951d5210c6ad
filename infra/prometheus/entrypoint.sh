#!/bin/sh
# Production mode (TSE_MODE=production): the registry and the configuration service serve HTTPS, so
# their two jobs scrape with scheme https, verifying each one's certificate against the stack's CA
# (handed out by the secrets service) and its name. The mounted prometheus.yml stays as it is; the
# running server reads a copy in /tmp with those two jobs changed.
set -eu
if [ "${TSE_MODE:-development}" = production ]; then
  config=/etc/prometheus/prometheus.yml
  awk '{ print }
       /^  - job_name: (service-registry|configuration-service)$/ {
         print "    scheme: https"
         print "    tls_config: {ca_file: /run/secrets/ca.crt}"
       }' "$config" > /tmp/prometheus.yml
  for argument do
    shift
    [ "$argument" = "--config.file=$config" ] && argument=--config.file=/tmp/prometheus.yml
    set -- "$@" "$argument"
  done
fi
exec /usr/bin/prometheus "$@"
