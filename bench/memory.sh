#!/usr/bin/env bash
# The memory part of make bench alone (see bench/run.sh): RSS per idle
# client, RSS after bursts of clients, large queries; sluice beside PgBouncer.
BENCH_ONLY=memory exec "$(dirname "$0")/run.sh" "$@"
