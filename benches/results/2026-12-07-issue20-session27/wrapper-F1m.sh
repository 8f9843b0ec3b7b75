#!/bin/sh
LEDGER_EXP_MAX_FRAME=1048576 exec /var/tmp/ab/release-ledger-F "$@"
