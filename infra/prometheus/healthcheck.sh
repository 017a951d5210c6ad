#!/bin/sh
# The container's healthcheck: promtool check ready on Prometheus itself, over HTTPS in production
# mode (TSE_MODE=production), verifying its certificate against the stack's CA.
if [ "${TSE_MODE:-development}" = production ]; then
  exec promtool check ready --url=https://127.0.0.1:9090 --http.config.file=/etc/prometheus/promtool-https.yml
fi
exec promtool check ready --url=http://127.0.0.1:9090
