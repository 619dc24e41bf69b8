# shellcheck shell=bash
# Drill for docs/runbooks/credential-leak.md: a service account's password has leaked and an
# intruder uses it beside the account's real client. Sourced by scripts/drill (lib.sh loaded).
#
# Set-up (rotation_rig in lib.sh): moto, svc-billing (a service account) in the credential secret,
# `authserver serve` on the secrets_manager store (version check 3 s, AWSPREVIOUS grace 15 s,
# X-Forwarded-For trusted from 127.0.0.1), the rotation function under the Lambda emulator.
# Traffic, 5 requests/s each: the real client from 198.51.100.7, which reads its password from
# the delivery secret, and the intruder from 203.0.113.66 with the leaked password.
# Act 1, the runbook's "rotate now": RotateSecret and the four steps; the real client reads the
# new password at once. Expected: the leaked password keeps working for the grace period only
# (the exposure the runbook describes), then gets no 200 at all, although it sat in the verified
# cache; the real client never fails. The runbook's audit query, run over the audit events,
# names the intruder's address with its allowed and denied attempts and the store version change.
# Act 2, the runbook's contained path: the new password leaks too; `users pull / disable /
# push`, then a rotation of the disabled account, then `users enable` + push once the client has
# the newer password. Expected: the intruder never gets a 200 after the containment; the client
# is refused while the account is disabled and never after the enable.
# Regulation thresholds are raised so that bans do not mask the store's answers (the
# brute-force drill covers regulation).

# users_cli ARGS...: `authserver users ...` as the operator runs it (output to users-cli.log).
users_cli() {
  "${CLEAN_ENV[@]}" AUTHSERVER_STORE_ENDPOINT_URL="$MOTO_URL" "$BIN" users "$@" >>"$WORK/users-cli.log" 2>&1 ||
    fail "users $1 failed: $(tail -n 2 "$WORK/users-cli.log")"
}

# set_status disable|enable SECRET_ARN URL: the runbook's pull, disable/enable svc-billing,
# push; returns once the server serves the pushed version.
set_status() {
  local v pick
  users_cli pull --secret-id "$2" "$WORK/users.json"
  users_cli "$1" "$WORK/users.json" svc-billing
  users_cli push --secret-id "$2" "$WORK/users.json"
  v=$(grep -o 'version [0-9a-f-]* is AWSCURRENT' "$WORK/users-cli.log" | tail -n 1 | cut -d' ' -f2)
  pick=$(wait_version "$3" "$v")
  info "pushed version $v (svc-billing after '$1') in service after $pick ms"
}

run_drill() {
  local old="drill-svc-$RANDOM$RANDOM-leaked" grace=15 url arn delivery uh
  # Regulation off in effect (the brute-force drill covers it): here the intruder's failures
  # must not ban its address or lock the username, so each phase shows the store's answer alone.
  rotation_rig "$old" "$grace" AUTHSERVER_SERVER_TRUSTED_PROXIES=127.0.0.1 \
    AUTHSERVER_LOG_USER_HASH_KEY=drill-user-hash-key AUTHSERVER_REGULATION_MAX_USER_FAILURES=1000000 \
    AUTHSERVER_REGULATION_MAX_SOURCE_FAILURES=1000000 AUTHSERVER_REGULATION_MAX_SOURCE_USERNAMES=1000000
  arn=$RIG_ARN delivery=$RIG_DELIVERY url=$RIG_URL
  (umask 077 && printf '%s\n' "$old" >"$WORK/client.pw" && cp "$WORK/client.pw" "$WORK/old.pw" &&
    cp "$WORK/old.pw" "$WORK/intruder.pw")

  step "leak: the real client (198.51.100.7) and an intruder (203.0.113.66) both use svc-billing's password"
  phase leaked
  scraper_start "$url"
  traffic_start client legit "$url" --user svc-billing --password-file "$WORK/client.pw" --xff 198.51.100.7 --rate 5
  traffic_start intruder legit "$url" --user svc-billing --password-file "$WORK/intruder.pw" --xff 203.0.113.66 --rate 5
  wait_scrapes leaked 3
  info "intruder: $(traffic_summary intruder leaked)"

  step "response (runbook: Rotate, service account): aws secretsmanager rotate-secret, i.e. RotateSecret and the four steps"
  phase rotating
  rotate_now "$arn"
  (umask 077 && secret_value "$delivery" AWSCURRENT >"$WORK/new.pw") || fail "no AWSCURRENT in $delivery"
  cmp -s "$WORK/new.pw" "$WORK/old.pw" && fail "the delivery secret still holds the leaked password"
  cp "$WORK/new.pw" "$WORK/client.tmp" && mv "$WORK/client.tmp" "$WORK/client.pw"
  local pick deadline
  # shellcheck disable=SC2153 # TOKEN: set by rotate_now (lib.sh)
  pick=$(wait_version "$url" "$TOKEN")
  TOKEN1=$TOKEN
  phase grace
  # The server served the new version by now, so its grace period ends by now + grace.
  deadline=$(($(date +%s%3N) + grace * 1000))
  ok "new version $TOKEN in service ${pick} ms after finishSecret; the real client uses the new password"
  info "the leaked password stays accepted as AWSPREVIOUS until the grace period ends (${grace} s)"
  while [ "$(date +%s%3N)" -lt $((deadline + 1000)) ]; do sleep 0.25; done
  phase after-grace
  wait_scrapes after-grace 4

  # Act 2: the runbook's contained path. The new password leaks as well; this time the operator
  # disables the account first, rotates it while disabled, and enables it once the client has
  # the newer password.
  local t2
  t2=$(date +%s%3N)
  step "second leak: the intruder now has the current password too"
  cp "$WORK/new.pw" "$WORK/intruder.tmp" && mv "$WORK/intruder.tmp" "$WORK/intruder.pw"
  phase leak-2
  wait_scrapes leak-2 2
  step "contain (runbook: Contain): users pull, users disable, users push"
  phase containing # until the server serves the push: answers here are not judged
  set_status disable "$arn" "$url"
  phase contained
  wait_scrapes contained 2
  step "rotate the disabled account (runbook: Rotate, contained): it gets a new password and stays disabled"
  phase rotating-2
  rotate_now "$arn"
  (umask 077 && secret_value "$delivery" AWSCURRENT >"$WORK/newer.pw") || fail "no AWSCURRENT in $delivery"
  cmp -s "$WORK/newer.pw" "$WORK/new.pw" && fail "the disabled account was not rotated"
  cp "$WORK/newer.pw" "$WORK/client.tmp" && mv "$WORK/client.tmp" "$WORK/client.pw"
  pick=$(wait_version "$url" "$TOKEN")
  info "rotated version in service after $pick ms; the client has the newer password"
  phase rotated-disabled
  wait_scrapes rotated-disabled 2
  step "enable (runbook): users pull, users enable, users push"
  phase enabling
  set_status enable "$arn" "$url"
  phase enabled
  wait_scrapes enabled 3
  stop client
  stop intruder

  step "checks: what the clients saw"
  local p
  for p in leaked rotating grace after-grace; do
    [ "$(traffic_count client "$p" not200)" = 0 ] || fail "the real client failed in $p: $(traffic_summary client "$p")"
    info "real client, $p: $(traffic_summary client "$p")"
  done
  ok "the real client never failed"
  [ "$(traffic_count intruder grace 200)" -gt 0 ] || fail "the leaked password was not accepted during the grace period"
  for p in leaked grace after-grace; do info "intruder, $p: $(traffic_summary intruder "$p")"; done
  [ "$(traffic_count intruder after-grace 200)" = 0 ] ||
    fail "the leaked password still worked after the grace period: $(traffic_summary intruder after-grace)"
  [ "$(traffic_count intruder after-grace 401)" -gt 0 ] || fail "the intruder got no 401 after the grace period"
  ok "leaked password: accepted during the grace period, refused after it (no 200 in $(traffic_count intruder after-grace all) attempts)"
  [ "$(traffic_count intruder leak-2 200)" -gt 0 ] || fail "the second leak did not work to begin with"
  for p in leak-2 contained rotated-disabled enabled; do
    info "act 2, intruder, $p: $(traffic_summary intruder "$p")"
    info "act 2, real client, $p: $(traffic_summary client "$p")"
  done
  for p in contained rotating-2 rotated-disabled enabling enabled; do
    [ "$(traffic_count intruder "$p" 200)" = 0 ] || fail "the intruder got 200 in $p: $(traffic_summary intruder "$p")"
  done
  for p in contained rotated-disabled; do
    [ "$(traffic_count client "$p" 200)" = 0 ] || fail "the disabled account was accepted in $p"
  done
  [ "$(traffic_count client enabled not200)" = 0 ] || fail "the client failed after the enable: $(traffic_summary client enabled)"
  ok "contained path: the intruder never got in again; the client failed while disabled (as the runbook says) and never after the enable"

  step "checks: the runbook's audit query (auth_attempt by user_hash, stats by source and outcome)"
  uh=$("${CLEAN_ENV[@]}" AUTHSERVER_LOG_USER_HASH_KEY=drill-user-hash-key "$BIN" users hash svc-billing) ||
    fail "authserver users hash failed"
  info "user_hash of svc-billing: $uh"
  "$PY" "$ROOT/scripts/drills/drillkit.py" leak-audit "$WORK/server.log" "$uh" "$deadline" "$TOKEN1" "$t2" ||
    fail "the audit trail does not show what the runbook relies on"
  ok "the intruder's address, with its last allowed attempt inside the grace period, and the version change"
  no_secrets "$WORK/old.pw" "$WORK/new.pw" "$WORK/newer.pw" -- "$WORK/server.log" "$WORK/rotation-fn.log" \
    "$WORK/push.log" "$WORK/users-cli.log"

  promtool_check \
    --silent AuthServerErrorsHigh@leaked \
    --silent AuthServerErrorsHigh@after-grace \
    --silent AuthServerStoreFetchErrors@after-grace \
    --true 'sum(increase(authserver_store_refresh_total[5m])) > bool 0@grace+2' \
    --true '(sum(increase(authserver_auth_failure_total[5m])) or vector(0)) == bool 0@leaked' \
    --true 'sum(increase(authserver_auth_failure_total{reason="wrong_password"}[5m])) > bool 0@after-grace' \
    --true 'sum(increase(authserver_auth_failure_total{reason="disabled"}[5m])) > bool 0@contained' \
    --silent AuthServerErrorsHigh@enabled
}
