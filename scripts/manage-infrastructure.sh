#!/usr/bin/env bash
# The name the milestone document uses; the commands are infra/host/stackctl's (up, down, status, validate, logs).
exec "$(dirname "$0")/../infra/host/stackctl" "$@"
