# shellcheck shell=bash
# Drill for docs/runbooks/secret-rotation-validation.md, pending issue 7 (credential rotation):
# exits 3 ("pending"), which `scripts/drill --all` reports without failing.
#
# What it will do once issue 7 lands (the interface issue 7 specifies), against the moto server:
#   1. a service account in the store with a delivery secret; `authserver users push --secret-id`
#      uploads the users file; `authserver serve` runs the secrets_manager store;
#   2. steady validation traffic with the current password, scraped as in the other drills;
#   3. the rotation handler (AUTHSERVER_LAMBDA_MODE=rotation) driven through createSecret,
#      setSecret, testSecret, finishSecret for a client request token; the client switches to
#      the new password read from the delivery secret (AWSCURRENT) after finishSecret;
#   4. checks: zero failed valid requests in every phase; the new AWSCURRENT version picked up
#      within store.version_check_seconds (measured); the old password accepted during the
#      AWSPREVIOUS grace period and refused after it; promtool: AuthServerSuccessRatioLow,
#      AuthServerErrorsHigh and AuthServerStoreFetchErrors silent throughout.

run_drill() {
  step "rotation under load needs credential rotation (issue 7), which has not landed"
  info "missing: AUTHSERVER_LAMBDA_MODE=rotation handler, 'authserver users push/pull', the AWSPENDING/AWSPREVIOUS acceptance"
  if "$BIN" users push --help >/dev/null 2>&1; then
    info "note: 'authserver users push' now exists: this drill should be implemented (see the plan in scripts/drills/rotation-under-load.sh)"
  fi
  echo "== result: PENDING rotation-under-load (requires issue 7)"
  exit "$PENDING_RC"
}
