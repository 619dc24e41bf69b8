# shellcheck shell=bash
# Drill for docs/runbooks/deployment-rollback.md: a release with a broken configuration. Sourced
# by scripts/drill (lib.sh loaded).
#
# 1. The gate: `authserver config check --config NEW` must exit non-zero, with the reason, for
#    each broken variant (a mistyped key, an invalid value, a users file below the hash policy),
#    and zero for the running release's configuration; the deploy stops there and the service
#    never notices (alerts silent).
# 2. What the gate prevents: the same release deployed without it (the running process replaced
#    by one with the mistyped key) does not start; the scraper records the failed scrapes as
#    `up` 0, and AuthServerDown must fire.
# 3. Rollback: the previous configuration, kept beside the release, is started again; the same
#    store version is in service, the legitimate client gets 200 again, AuthServerDown clears.
# On Lambda the rollback is the alias shift of the runbook; it cannot be exercised locally (the
# Lambda emulator has no aliases), so this drill proves the standalone path and the gate.

run_drill() {
  local pw="drill-alice-$RANDOM$RANDOM" port url v1 rc out version_before version_after
  step "release v1: users file (m=19456 KiB, t=2) and configuration v1.toml"
  "$PY" "$ROOT/scripts/drills/drillkit.py" users "$WORK/users.json" \
    "alice:ACTIVE:$(printf '%s\n' "$pw" | "$BIN" hash-password --m-cost 19456 --t-cost 2)"
  "$PY" "$ROOT/scripts/drills/drillkit.py" users "$WORK/users-weak.json" \
    "alice:ACTIVE:$(printf '%s\n' "$pw" | "$BIN" hash-password --m-cost 8192 --t-cost 1)"
  port=$(free_port)
  url="http://127.0.0.1:$port"
  v1="$WORK/v1.toml"
  printf '[server]\nlisten = "127.0.0.1:%s"\n[store]\nfile = "%s"\n[cache]\ncapacity = 10000\n' \
    "$port" "$WORK/users.json" >"$v1"
  # Release v2 variants: each one a mistake that reaches production in real life.
  sed 's/^capacity = /capacty = /' "$v1" >"$WORK/v2-typo.toml"
  sed 's/^\[store\]$/[store]\ncache_ttl_minutes = 0/' "$v1" >"$WORK/v2-value.toml"
  sed "s#users.json#users-weak.json#" "$v1" >"$WORK/v2-weak-hash.toml"

  step "start release v1 (authserver serve --config v1.toml)"
  server_start server "$port" -- --config "$v1" || fail "v1 did not start: $(tail -n 3 "$WORK/server.log")"
  version_before=$(store_version "$url")
  ok "v1 up, store version $version_before"

  step "baseline: legitimate client (alice, 5 requests/s); scraping /metrics every $SCRAPE_SECONDS s"
  phase baseline
  scraper_start "$url"
  traffic_start legit legit "$url" --user alice --password "$pw" --rate 5
  wait_scrapes baseline 3

  step "deploy gate: authserver config check on each candidate configuration"
  phase gate
  clean_env
  for f in v1 v2-typo v2-value v2-weak-hash; do
    set +e
    out=$("${CLEAN_ENV[@]}" "$BIN" config check --config "$WORK/$f.toml" 2>&1)
    rc=$?
    set -e
    info "config check $f.toml -> exit $rc: $(printf '%s' "$out" | tail -n 1)"
    if [ "$f" = v1 ]; then
      [ "$rc" = 0 ] || fail "the running release's configuration does not pass config check"
    else
      [ "$rc" != 0 ] || fail "config check accepted the broken $f.toml"
    fi
  done
  ok "config check passes v1 and refuses every broken v2 with its reason: the deploy stops here"
  wait_scrapes gate 2
  [ "$(traffic_count legit gate not200)" = 0 ] || fail "service disturbed during the gated deploy"
  ok "service undisturbed: $(traffic_summary legit gate)"

  step "what the gate prevents: v2-typo deployed anyway (v1 stopped, v2 started)"
  stop server
  phase bad-deploy
  if server_start server2 "$port" -- --config "$WORK/v2-typo.toml"; then
    fail "v2-typo started: the broken configuration was not refused at start-up"
  fi
  info "v2 exited with status $SERVER_EXIT: $(grep -m1 -i error "$WORK/server2.log" || tail -n 1 "$WORK/server2.log")"
  ok "v2 refused to start; nothing listens on 127.0.0.1:$port"
  wait_scrapes bad-deploy 4
  info "legitimate client during the bad deploy: $(traffic_summary legit bad-deploy)"
  [ "$(traffic_count legit bad-deploy conn_error)" -gt 0 ] || fail "the legitimate client did not notice the outage"

  step "rollback: start the previous release (v1.toml, kept beside the release)"
  server_start server3 "$port" -- --config "$v1" || fail "rollback failed: $(tail -n 3 "$WORK/server3.log")"
  phase rollback
  version_after=$(store_version "$url")
  [ "$version_after" = "$version_before" ] || fail "store version after rollback $version_after, before $version_before"
  ok "v1 back, /ready 200 with the same store version $version_after"
  wait_scrapes rollback 3
  stop legit
  [ "$(traffic_count legit rollback not200)" = 0 ] || fail "errors after the rollback: $(traffic_summary legit rollback)"
  ok "legitimate client after the rollback: $(traffic_summary legit rollback)"

  promtool_check \
    --silent AuthServerDown@baseline \
    --silent AuthServerDown@gate \
    --silent AuthServerErrorsHigh@gate \
    --fires AuthServerDown@bad-deploy \
    --silent AuthServerDown@rollback \
    --silent AuthServerErrorsHigh@rollback \
    --silent AuthServerSuccessRatioLow@rollback
}
