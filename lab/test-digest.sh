#!/usr/bin/env bash
# lab/test-digest.sh LOG: the failures of a go test run in brief, for the end of make test's output. go test
# prints a failing test's whole log (hundreds of lines of rollouts and process logs) before its package's FAIL
# line, so a log cut to its head and tail (as a CI summary shows it) may keep no failure message at all: this
# repeats the FAIL lines, the testify Error/Messages lines with a few lines of each error, and panics or timeouts,
# at most 80 lines, last.
set -uo pipefail
log=${1:?usage: lab/test-digest.sh LOG}
[[ -s $log ]] || exit 0
echo "[test] the failures in brief (the whole output: $log):"
awk '
/^[ \t]*--- FAIL:/ || /^FAIL[ \t]/ { print; tf = 0; n = 0; next }
/^panic:/ || /test timed out after/ { print; n = 6; next }
/^ *\tError Trace:/ { print; tf = 0; next }
/^ *\t(Error|Messages):/ { print; tf = 1; c = 0; next }
/^ *\t[A-Z][a-z ]*:/ { tf = 0; next }
tf && /^ *\t +\t/ { if (++c <= 6) print; next }
{ tf = 0 }
n > 0 { print; n-- }
' "$log" | cut -c1-400 | head -n 80
