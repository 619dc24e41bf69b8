# shellcheck shell=bash
# Drill for docs/runbooks/store-outage.md: the Secrets Manager credential store fails under a
# running server. Sourced by scripts/drill (lib.sh loaded).
#
# Local AWS: a moto server (scripts/aws-env.sh start_aws_env, or $MOTO_URL when the caller
# already runs one). The server runs the secrets_manager store against it with short timers so
# the whole lifecycle fits in about two minutes: CACHE_TTL 1 minute, max_stale 1 minute, version
# check every 2 s. The outage: the secret is scheduled for deletion (DeleteSecret with a recovery
# window), which is one real way to lose it; every refresh then fails.
# Expected, in order: the last good snapshot keeps serving (200; /ready true with lastError),
# then after max_stale the server fails closed (503 + Retry-After, /ready 503), then
# RestoreSecret (the remediation) brings it back within one version check.

run_drill() {
  local pw="drill-alice-$RANDOM$RANDOM" port url secret
  step "local AWS endpoint (moto server)"
  start_moto
  secret="authserver/drill-$RANDOM$RANDOM/credentials"
  "$PY" "$ROOT/scripts/drills/drillkit.py" users "$WORK/users.json" \
    "alice:ACTIVE:$(printf '%s\n' "$pw" | "$BIN" hash-password --m-cost 19456 --t-cost 2)"
  moto create "$secret" --file="$WORK/users.json"
  ok "secret $secret created at $MOTO_URL"

  port=$(free_port)
  url="http://127.0.0.1:$port"
  step "start authserver serve on 127.0.0.1:$port: secrets_manager store, TTL 1 min, max_stale 1 min, version check 2 s"
  server_start server "$port" AUTHSERVER_STORE_KIND=secrets_manager AUTHSERVER_STORE_SECRET_ID="$secret" \
    AUTHSERVER_STORE_ENDPOINT_URL="$MOTO_URL" AUTHSERVER_STORE_CACHE_TTL_MINUTES=1 \
    AUTHSERVER_STORE_MAX_STALE_MINUTES=1 AUTHSERVER_STORE_VERSION_CHECK_SECONDS=2 \
    AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    AWS_REGION="$AWS_REGION" AWS_EC2_METADATA_DISABLED=true -- ||
    fail "server did not start: $(tail -n 3 "$WORK/server.log")"
  ok "server up: $(curl -s -m 5 "$(admin_url "$url")/ready")"

  step "baseline: legitimate client (alice, 5 requests/s); scraping /metrics every $SCRAPE_SECONDS s"
  phase baseline
  scraper_start "$url"
  traffic_start legit legit "$url" --user alice --password "$pw" --rate 5
  wait_scrapes baseline 3

  step "incident: the secret is scheduled for deletion (DeleteSecret, 7-day recovery window)"
  sm_call delete_secret "$secret" RecoveryWindowInDays=7
  phase outage
  local t_out ready code
  t_out=$(date +%s)
  sleep 5
  ready=$(curl -s -m 5 "$(admin_url "$url")/ready")
  info "/ready: $ready"
  printf '%s' "$ready" | grep -q '"ready":true' || fail "not serving the last good snapshot"
  printf '%s' "$ready" | grep -q '"lastError":"the secret is scheduled for deletion"' || fail "/ready does not say why"
  ok "stale-on-error: the last good snapshot serves (ready, lastError set)"
  step "waiting for max_stale (1 min) to pass: the server must fail closed"
  for _ in $(seq 1 180); do
    code=$(http_status GET "$url/ready")
    [ "$code" = 503 ] && break
    sleep 0.5
  done
  [ "$code" = 503 ] || fail "still ready $(($(date +%s) - t_out)) s into the outage"
  phase fail-closed
  ok "/ready 503 after $(($(date +%s) - t_out)) s of outage"
  info "legitimate client while stale: $(traffic_summary legit outage)"
  [ "$(traffic_count legit outage 200)" -gt 100 ] || fail "too few 200s while serving stale"
  [ "$(traffic_count legit outage not200)" -le 5 ] ||
    fail "failures before max_stale: $(traffic_summary legit outage)"
  curl -s -i -m 5 -X POST -u "alice:$pw" "$url/auth/validate" >"$WORK/closed.http"
  head -n 1 "$WORK/closed.http" | grep -q ' 503' || fail "validate did not answer 503: $(head -n 1 "$WORK/closed.http")"
  grep -qi '^retry-after:' "$WORK/closed.http" || fail "503 without Retry-After"
  ok "POST /auth/validate: 503 with $(grep -i '^retry-after:' "$WORK/closed.http" | tr -d '\r')"
  wait_scrapes fail-closed 5
  info "legitimate client while closed: $(traffic_summary legit fail-closed)"

  step "remediation: RestoreSecret (the secret comes back; the next version check recovers)"
  sm_call restore_secret "$secret"
  local t_fix
  t_fix=$(date +%s)
  for _ in $(seq 1 60); do
    code=$(http_status GET "$url/ready")
    [ "$code" = 200 ] && break
    sleep 0.25
  done
  [ "$code" = 200 ] || fail "not ready 15 s after the restore"
  phase recovery
  ok "/ready 200 $(($(date +%s) - t_fix)) s after the restore: $(curl -s -m 5 "$(admin_url "$url")/ready")"
  wait_scrapes recovery 7
  stop legit
  [ "$(traffic_count legit recovery not200)" = 0 ] || fail "failures after recovery: $(traffic_summary legit recovery)"
  ok "legitimate client after recovery: $(traffic_summary legit recovery)"

  step "checks: the server log and audit trail the runbook queries"
  log_has "$WORK/server.log" '"message":"credential store failing; serving the last good snapshot"' "stale serving logged"
  log_has "$WORK/server.log" '"message":"credential store unavailable: no usable snapshot, answering 503"' "fail-closed logged"
  log_has "$WORK/server.log" '"message":"credential store recovered"' "recovery logged"
  log_has "$WORK/server.log" '"event":"store_reload_failed"' "audit store_reload_failed"
  log_has "$WORK/server.log" '"reason":"store_unavailable"' "denials with reason store_unavailable"

  promtool_check \
    --silent AuthServerStoreFetchErrors@baseline \
    --silent AuthServerStoreStale@baseline \
    --fires AuthServerStoreFetchErrors@outage \
    --fires AuthServerStoreStale@outage \
    --silent AuthServerErrorsHigh@outage \
    --fires AuthServerErrorsHigh@fail-closed \
    --true 'sum(increase(authserver_auth_failure_total{reason="store_unavailable"}[5m])) > bool 10@fail-closed' \
    --silent AuthServerStoreFetchErrors@recovery \
    --silent AuthServerStoreStale@recovery \
    --silent AuthServerErrorsHigh@recovery \
    --silent AuthServerSuccessRatioLow@recovery
}
