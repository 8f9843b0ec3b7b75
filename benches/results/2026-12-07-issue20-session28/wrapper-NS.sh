#!/bin/sh
export LEDGER_EXP_NO_PSTORE_WRITE=1
exec /var/tmp/ab/release-ledger-X2 "$@"
