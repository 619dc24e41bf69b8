# shellcheck shell=bash
# Drill for docs/runbooks/brute-force.md: a password spray from many addresses while a legitimate
# client keeps validating. Sourced by scripts/drill (lib.sh loaded).
#
# The server trusts 127.0.0.1 as a proxy (AUTHSERVER_SERVER_TRUSTED_PROXIES), so the spray's
# X-Forwarded-For addresses 203.0.113.1-50 are its client addresses, and the legitimate client is
# 198.51.100.7. Regulation runs with its defaults (10 failing usernames or 30 failures per address
# per 5 minutes ban the address; 10 failures per username lock it). Every fifth guess targets
# alice, so alice's username gets locked too: the legitimate alice client must still get 200 on
# every request (verified cache + trusted source, issue 5).
# Hashes use the policy floor (m=19456 KiB, t=2) so the spray's verifications (dummy ones for
# unknown users cost the same) keep the drill short on 2 cores.

run_drill() {
  local alice_pw="drill-alice-$RANDOM$RANDOM" port url h
  step "users file: alice and carol, Argon2id m=19456 KiB t=2"
  h=$(printf '%s\n' "$alice_pw" | "$BIN" hash-password --m-cost 19456 --t-cost 2)
  "$PY" "$ROOT/scripts/drills/drillkit.py" users "$WORK/users.json" "alice:ACTIVE:$h" \
    "carol:ACTIVE:$(printf 'carol-pw\n' | "$BIN" hash-password --m-cost 19456 --t-cost 2)"

  port=$(free_port)
  url="http://127.0.0.1:$port"
  step "start authserver serve on 127.0.0.1:$port (regulation defaults, X-Forwarded-For trusted from 127.0.0.1)"
  server_start server "$port" AUTHSERVER_SERVER_TRUSTED_PROXIES=127.0.0.1 \
    AUTHSERVER_LOG_USER_HASH_KEY=drill-user-hash-key -- --users "$WORK/users.json" ||
    fail "server did not start: $(tail -n 3 "$WORK/server.log")"
  ok "server up"

  step "baseline: legitimate client (alice from 198.51.100.7, 5 requests/s); scraping /metrics every $SCRAPE_SECONDS s"
  phase baseline
  scraper_start "$url"
  traffic_start legit legit "$url" --user alice --password "$alice_pw" --xff 198.51.100.7 --rate 5
  wait_scrapes baseline 3
  info "legitimate client: $(traffic_summary legit baseline)"

  step "incident: password spray, 4 threads x 25 requests/s from 203.0.113.1-50, fresh usernames, every 5th guess at alice"
  phase attack
  traffic_start spray spray "$url" --sources 50 --threads 4 --rate 25 --target alice
  wait_scrapes attack 14
  info "spray: $(traffic_summary spray attack)"
  info "legitimate client: $(traffic_summary legit attack)"
  info "server: authserver_bans_total $(metric "$url" authserver_bans_total), authserver_rate_limited_total $(metric "$url" authserver_rate_limited_total)"

  step "remediation: block the sources upstream (the drill stops the spray, as a WAF IP set or firewall rule would)"
  stop spray
  phase recovery
  wait_scrapes recovery 7
  info "legitimate client: $(traffic_summary legit recovery)"
  stop legit

  step "checks: what clients saw"
  local bad p
  for p in baseline attack recovery; do
    bad=$(traffic_count legit "$p" not200)
    [ "$bad" = 0 ] || fail "legitimate client got $bad non-200 answers in $p: $(traffic_summary legit "$p")"
  done
  ok "legitimate client: every answer 200 in baseline, attack and recovery"
  [ "$(traffic_count spray attack 429)" -gt 0 ] || fail "the spray never got 429"
  ok "spray answered 429 $(traffic_count spray attack 429) times (banned sources), 401 $(traffic_count spray attack 401) times"
  [ "$(traffic_count spray attack 503)" = 0 ] || info "note: the spray also got $(traffic_count spray attack 503) x 503 (hash limiter full)"

  step "checks: the server log and audit trail the runbook queries"
  log_has "$WORK/server.log" '"message":"ban issued"' "bans logged"
  log_has "$WORK/server.log" '"event":"ban","' "ban audit events"
  log_has "$WORK/server.log" '"scope":"user"' "a username lock (alice's user_hash) while alice kept getting 200"
  log_has "$WORK/server.log" '"reason":"rate_limited"' "denials with reason rate_limited"

  promtool_check \
    --silent AuthServerSuccessRatioLow@baseline \
    --silent AuthServerBansHigh@baseline \
    --fires AuthServerBansHigh@attack \
    --fires AuthServerSuccessRatioLow@attack \
    --silent AuthServerSuccessRatioLow@recovery \
    --silent AuthServerErrorsHigh@attack \
    --silent AuthServerLimiterRejections@attack \
    --true 'sum(increase(authserver_bans_total[5m])) > bool 0@attack+5' \
    --true 'sum(increase(authserver_bans_total[30m])) > bool 0@attack' \
    --true 'sum(increase(authserver_rate_limited_total[5m])) > bool 0@attack' \
    --true 'sum(increase(authserver_auth_failure_total{reason="rate_limited"}[5m])) > bool 0@attack' \
    --true 'sum(increase(authserver_rate_limited_total[5m])) == bool 0@recovery'
}
