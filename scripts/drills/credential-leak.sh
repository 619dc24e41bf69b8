# shellcheck shell=bash
# Drill for docs/runbooks/credential-leak.md, pending issue 7 (credential rotation): exits 3
# ("pending"), which `scripts/drill --all` reports without failing.
#
# What it will do once issue 7 lands (the interface issue 7 specifies), against the moto server:
#   1. a client validates continuously with a service account's password (verified cache warm);
#   2. "leak": the operator rotates now (`aws secretsmanager rotate-secret` equivalent: the
#      rotation handler's four steps) and pushes the store with `authserver users push`;
#   3. checks: the new AWSCURRENT version is picked up within store.version_check_seconds; the
#      old password keeps working only for the AWSPREVIOUS grace period, then gets 401 even
#      though it was in the verified cache (the snapshot change purges it); the audit trail
#      (`store_version_changed`, `auth_attempt` by user_hash) shows who used the old password
#      after the leak; promtool: AuthServerErrorsHigh silent.
# Part of this (disable the user / replace the hash, cache purged on reload, old password 401)
# can be drilled today with the file store; the rotation-with-grace path cannot.

run_drill() {
  step "credential leak response needs rotation with a grace period (issue 7), which has not landed"
  info "missing: AUTHSERVER_LAMBDA_MODE=rotation handler, 'authserver users push', AWSPREVIOUS grace acceptance"
  if "$BIN" users push --help >/dev/null 2>&1; then
    info "note: 'authserver users push' now exists: this drill should be implemented (see the plan in scripts/drills/credential-leak.sh)"
  fi
  echo "== result: PENDING credential-leak (requires issue 7)"
  exit "$PENDING_RC"
}
