#!/bin/sh
# Production mode (TSE_MODE=production): every server Prometheus talks to speaks HTTPS, and so does
# Prometheus. The mounted prometheus.yml stays as it is; the running server reads a copy in /tmp in
# which each of the stack's jobs, the registry's discovery and the Alertmanager it alerts use https
# and verify the server's certificate and name against the stack's CA (handed out by the secrets
# service); its own web server takes the certificate the secrets service made for it.
set -eu
if [ "${TSE_MODE:-development}" = production ]; then
  config=/etc/prometheus/prometheus.yml
  awk '{ print_line = 1 }
       /^  alertmanagers:$/ { alerting = 1 }
       alerting && /^    - static_configs:$/ {
         print "    - scheme: https"
         print "      tls_config: {ca_file: /run/secrets/ca.crt}"
         print "      static_configs:"
         alerting = 0; print_line = 0
       }
       /^      - url: http:\/\/service-registry:8080\// {
         sub("http://", "https://")
         print
         print "        tls_config: {ca_file: /run/secrets/ca.crt}"
         print_line = 0
       }
       print_line { print }
       /^  - job_name: (prometheus|redis|postgres|alertmanager|service-registry|configuration-service)$/ {
         print "    scheme: https"
         print "    tls_config: {ca_file: /run/secrets/ca.crt}"
       }' "$config" > /tmp/prometheus.yml
  printf 'tls_server_config:\n  cert_file: /run/secrets/tls.crt\n  key_file: /run/secrets/tls.key\n  min_version: TLS12\n' \
    > /tmp/web.yml
  for argument do
    shift
    [ "$argument" = "--config.file=$config" ] && argument=--config.file=/tmp/prometheus.yml
    set -- "$@" "$argument"
  done
  set -- "$@" --web.config.file=/tmp/web.yml
fi
exec /usr/bin/prometheus "$@"
