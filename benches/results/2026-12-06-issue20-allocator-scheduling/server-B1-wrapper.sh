#!/bin/bash
# server-J1b with the projection worker's thread switched to SCHED_BATCH once it exists.
( for i in $(seq 400); do sleep 0.05; t=$(grep -lx "projections" /proc/$$/task/*/comm 2>/dev/null | head -1); if [ -n "$t" ]; then chrt -b -p 0 "$(basename "$(dirname "$t")")"; echo "B1: $(basename "$(dirname "$t")") SCHED_BATCH" >&2; break; fi; done ) &
exec /var/tmp/ab/server-J1b "$@"
