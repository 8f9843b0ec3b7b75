#!/bin/sh
(env SLICE_projections=20000 python3 /var/tmp/ab/setslice.py $$ 2>>/var/tmp/s26/setslice-XW.log &)
exec /var/tmp/ab/release-ledger-P "$@"
