#!/bin/sh
(env SLICE_projections=20000 python3 /var/tmp/ab/setslice.py $$ 2>>/var/tmp/s26/setslice-HW.log &)
LEDGER_EXP_PASS_PAUSE_US=5000 exec /var/tmp/ab/release-ledger-H "$@"
