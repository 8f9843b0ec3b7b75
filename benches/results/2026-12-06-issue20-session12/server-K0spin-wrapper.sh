#!/bin/bash
# server-K0 with one SCHED_IDLE busy loop pinned per vCPU, so that no vCPU halts (an
# experiment: what do idle-vCPU wake-ups cost the round trip?). Each loop ends when the server
# (this PID, after exec) does.
for c in 0 1; do chrt -i 0 taskset -c $c bash -c "while kill -0 $$ 2>/dev/null; do :; done" & done
exec /var/tmp/ab/server-K0 "$@"
