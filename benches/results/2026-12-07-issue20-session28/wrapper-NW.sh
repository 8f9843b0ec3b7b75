#!/bin/sh
export LEDGER_EXP_NO_WORKER=1
exec /var/tmp/ab/release-ledger-X "$@"
