#!/bin/sh
export LEDGER_EXP_PSTORE_NOCOMP=1
exec /var/tmp/ab/release-ledger-X2 "$@"
