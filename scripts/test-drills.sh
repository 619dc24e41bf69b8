#!/usr/bin/env bash
# The incident drills as a test (docs/runbooks/README.md): runs `scripts/drill --all` and fails
# when any implemented drill fails, that is when a signal a runbook relies on did not appear or
# its remediation did not clear it. Drills whose feature has not landed yet report "pending" and
# do not fail the run. About 6 minutes on 2 cores; installs what it needs (see scripts/drill).
# First, scripts/drills/check-runbooks.py checks that every alert, alarm, metric, setting,
# variable, parameter and command the runbooks name exists (a failure counts as one failed drill).
#
#   scripts/test-drills.sh
#
# Last line: "drills: N passed, M failed, K pending"; exit status non-zero when M > 0 (or when
# the drills could not run at all).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log=$(mktemp "${TMPDIR:-/tmp}/test-drills.XXXXXX")
trap 'rm -f "$log"' EXIT

names_failed=0
echo "== runbook names (scripts/drills/check-runbooks.py)"
python3 scripts/drills/check-runbooks.py || names_failed=1
echo

set +e
scripts/drill --all 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

summary=$(grep -E '^drills: [0-9]+ passed, [0-9]+ failed, [0-9]+ pending$' "$log" | tail -n 1 || true)
if [ -z "$summary" ]; then
  echo
  echo "drills: 0 passed, 1 failed, 0 pending (scripts/drill --all did not finish: exit $rc)"
  exit 1
fi
failed=$(printf '%s\n' "$summary" | sed -E 's/^drills: [0-9]+ passed, ([0-9]+) failed.*/\1/')
if [ "$names_failed" = 1 ]; then
  echo "runbook names: FAIL (see the top of this output)"
  failed=$((failed + 1))
  summary=$(printf '%s\n' "$summary" | sed -E "s/ [0-9]+ failed/ $failed failed/")
fi
echo
echo "$summary"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
