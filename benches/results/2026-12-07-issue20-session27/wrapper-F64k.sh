#!/bin/sh
LEDGER_EXP_MAX_FRAME=65536 exec /var/tmp/ab/release-ledger-F "$@"
