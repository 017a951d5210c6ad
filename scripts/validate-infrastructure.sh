#!/usr/bin/env bash
# The name the milestone document uses: the acceptance suite against the running stack.
exec "$(dirname "$0")/../infra/host/stackctl" validate "$@"
