# shellcheck shell=bash
# Drill for docs/runbooks/secret-rotation-validation.md: the credential secret is rotated while
# clients keep validating. Sourced by scripts/drill (lib.sh loaded).
#
# Set-up (rotation_rig in lib.sh): the moto server; a service account `svc-billing` (its
# `deliverySecretId` makes the rotation rotate it) and a person, `alice`, pushed with
# `authserver users push`; the server on the secrets_manager store (version check every 3 s,
# AWSPREVIOUS grace 12 s); the rotation function (this build's binary, AUTHSERVER_LAMBDA_MODE=
# rotation) under cargo-lambda's Runtime API emulator. RotateSecret on moto stages AWSPENDING and
# the drill delivers the four steps with its token, as Secrets Manager does.
#
# Act 1 rehearses a failed finishSecret (issue 12): a rotation whose delivery secret is deleted
# before finishSecret, which must fail naming it and move nothing; then the runbook's recovery
# (restore the secret, remove AWSPENDING, rotate again: act 2). Clients must not notice.
#
# Load: three clients at 10 requests/s each: alice; `prompt`, which reads svc-billing's password
# from the delivery secret's AWSCURRENT the moment finishSecret returns (a client without a
# cache); `late`, which keeps the old one (AWSPREVIOUS by then) for a while, as a caching client
# does. Every answer to every client must be 200. The rotation function settles for one version
# check + 5 s before finishSecret moves AWSCURRENT (rotation.settle_seconds), so the server
# already accepts the new password (as AWSPENDING) when `prompt` first sends it. Then: the new version is in service within the version check
# (measured), the secret's labels are right, the old password is refused once the grace period
# is over, no password reached a log, and promtool finds AuthServerSuccessRatioLow,
# AuthServerErrorsHigh and AuthServerStoreFetchErrors silent throughout.

run_drill() {
  local old="drill-svc-$RANDOM$RANDOM-old" alice_pw="drill-alice-$RANDOM$RANDOM" url
  local delivery arn token grace=12 cost=(--m-cost 19456 --t-cost 2)
  rotation_rig "$old" "$grace" "alice:ACTIVE:$(printf '%s\n' "$alice_pw" | "$BIN" hash-password "${cost[@]}")"
  arn=$RIG_ARN delivery=$RIG_DELIVERY url=$RIG_URL
  local v0=$RIG_VERSION

  step "baseline: alice, prompt and late (svc-billing, old password), 10 requests/s each; scraping every $SCRAPE_SECONDS s"
  (umask 077 && printf '%s\n' "$old" >"$WORK/prompt.pw" && printf '%s\n' "$old" >"$WORK/late.pw")
  phase baseline
  scraper_start "$url"
  traffic_start alice legit "$url" --user alice --password "$alice_pw" --rate 10
  traffic_start prompt legit "$url" --user svc-billing --password-file "$WORK/prompt.pw" --rate 10
  traffic_start late legit "$url" --user svc-billing --password-file "$WORK/late.pw" --rate 10
  wait_scrapes baseline 3

  step "failed finish: a rotation whose finishSecret fails (a delivery secret deleted mid-rotation), then the runbook's recovery"
  phase failed-finish
  local failed err s
  failed=$(rotation_begin "$arn") || fail "RotateSecret failed"
  for s in createSecret setSecret testSecret; do rotation_step "$s" "$arn" "$failed"; done
  sm_call delete_secret "$delivery" RecoveryWindowInDays=7
  err=$(rotation_step_fails finishSecret "$arn" "$failed")
  info "finishSecret: $err"
  printf '%s' "$err" | grep -q "scheduled for deletion" || fail "the error does not say why"
  printf '%s' "$err" | grep -qF "$(basename "$delivery")" || fail "the error does not name the delivery secret"
  secret_stages "$arn" | grep -q "AWSCURRENT=$v0" || fail "AWSCURRENT moved although finishSecret failed"
  ok "finishSecret failed before moving anything; AWSCURRENT still on $v0"
  # Runbook (secret-rotation-validation.md, "AWSPENDING stuck"): fix the cause, then, as nothing
  # was moved, remove AWSPENDING; the rotation below is the "rotate again".
  sm_call restore_secret "$delivery"
  sm_call update_secret_version_stage "$arn" VersionStage=AWSPENDING "RemoveFromVersionId=$failed"
  secret_stages "$arn" | grep -q AWSPENDING && fail "AWSPENDING still staged after the recovery"
  wait_scrapes failed-finish 3
  ok "recovered as the runbook says: delivery secret restored, AWSPENDING removed"

  step "rotation: RotateSecret (moto stages AWSPENDING), then the four steps back to back; finishSecret settles"
  step "         one version check + 5 s first, so the server accepts AWSPENDING before anyone reads it as current"
  phase pending
  local t0 t_pick seen
  t0=$(date +%s)
  rotate_now "$arn"
  # shellcheck disable=SC2153 # TOKEN: set by rotate_now (lib.sh)
  token=$TOKEN
  (umask 077 && secret_value "$delivery" AWSCURRENT >"$WORK/new.pw") || fail "no AWSCURRENT in $delivery"
  cp "$WORK/new.pw" "$WORK/prompt.tmp" && mv "$WORK/prompt.tmp" "$WORK/prompt.pw"
  phase finished
  cmp -s "$WORK/new.pw" "$WORK/late.pw" && fail "the delivery secret still holds the old password"
  ok "rotation took $(($(date +%s) - t0)) s; prompt client switched to the new AWSCURRENT password at once"
  t_pick=$(wait_version "$url" "$token")
  seen=$(date +%s%3N) # the server served the new version by now: its grace period ends by seen + grace
  ok "new AWSCURRENT in service ${t_pick} ms after finishSecret returned (version check every 3 s)"
  [ "$t_pick" -le 4500 ] || fail "pickup took ${t_pick} ms, more than the version check interval allows"
  wait_scrapes finished 3
  cp "$WORK/new.pw" "$WORK/late.tmp" && mv "$WORK/late.tmp" "$WORK/late.pw"
  phase switched
  ok "late client switched to the new password (its cache expired)"
  wait_scrapes switched 3
  stop alice
  stop prompt
  stop late
  stop scraper # the probes below (the old password after the grace period) are not traffic

  step "checks: what clients saw"
  local c p bad
  for c in alice prompt late; do
    for p in baseline failed-finish pending finished switched; do
      [ "$(traffic_count "$c" "$p" all)" -gt 0 ] || fail "$c sent nothing in $p"
      bad=$(traffic_count "$c" "$p" not200)
      [ "$bad" = 0 ] || fail "$c got $bad failed answers in $p: $(traffic_summary "$c" "$p")"
    done
    info "$c: $(for p in baseline failed-finish pending finished switched; do printf '%s %s; ' "$p" "$(traffic_count "$c" "$p" all)"; done)"
  done
  ok "zero failed valid requests: every answer 200, for every client in every phase (the failed finish included)"
  info "late client while its password was AWSPREVIOUS: $(traffic_summary late finished)"

  step "checks: the secret's labels (runbook check 1)"
  local stages
  stages=$(secret_stages "$arn")
  info "$stages"
  printf '%s' "$stages" | grep -q "AWSCURRENT=$token" || fail "AWSCURRENT is not on the rotated version"
  printf '%s' "$stages" | grep -q "AWSPREVIOUS=$v0" || fail "AWSPREVIOUS is not on the version before"
  printf '%s' "$stages" | grep -q "AWSPENDING" && fail "AWSPENDING left behind"
  ok "AWSCURRENT on $token, AWSPREVIOUS on $v0, no AWSPENDING"

  step "checks: the old password is refused once the grace period ($grace s) is over (runbook check 6)"
  # The server's grace period starts when it serves the new version (by $seen).
  local code until=$((seen + grace * 1000 + 1000))
  (umask 077 && printf '%s\n' "$old" >"$WORK/old.pw")
  while [ "$(date +%s%3N)" -lt "$until" ]; do sleep 0.25; done
  code=$(validate_status "$url" svc-billing "$WORK/old.pw")
  [ "$code" = 401 ] || fail "the old password answered $code after the grace period"
  code=$(validate_status "$url" svc-billing "$WORK/new.pw")
  [ "$code" = 200 ] || fail "the new password answered $code"
  ok "after the grace period: old password 401, new password 200"

  step "checks: logs (runbook checks 3 and 4) and no secret in them"
  log_has "$WORK/server.log" '"message":"credential secret version loaded"' "version loads logged"
  log_has "$WORK/server.log" "\"version\":\"$token\"" "the new version in the server log"
  local n
  n=$(grep -c '"message":"rotation step"' "$WORK/rotation-fn.log" || true)
  [ "$n" -ge 4 ] || fail "the rotation function logged $n \"rotation step\" lines, expected one per step"
  ok "rotation function: $n \"rotation step\" lines"
  no_secrets "$WORK/new.pw" "$WORK/old.pw" -- "$WORK/server.log" "$WORK/rotation-fn.log" "$WORK/push.log"

  promtool_check \
    --silent AuthServerSuccessRatioLow@baseline \
    --silent AuthServerSuccessRatioLow@failed-finish \
    --silent AuthServerErrorsHigh@failed-finish \
    --silent AuthServerSuccessRatioLow@pending \
    --silent AuthServerSuccessRatioLow@switched \
    --silent AuthServerErrorsHigh@pending \
    --silent AuthServerErrorsHigh@switched \
    --silent AuthServerStoreFetchErrors@pending \
    --silent AuthServerStoreFetchErrors@switched \
    --true 'sum(increase(authserver_store_refresh_total[5m])) > bool 0@finished' \
    --true '(sum(increase(authserver_auth_failure_total[30m])) or vector(0)) == bool 0@switched'
}
