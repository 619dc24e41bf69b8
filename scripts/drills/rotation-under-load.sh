# shellcheck shell=bash
# Drill for docs/runbooks/secret-rotation-validation.md: the credential secret is rotated while
# clients keep validating. Sourced by scripts/drill (lib.sh loaded).
#
# Local AWS: the moto server (start_moto). The store: a service account `svc-billing` (a
# `deliverySecretId`, so the rotation rotates it) and a person, `alice`, pushed with
# `authserver users push`. The server runs the secrets_manager store with a version check every
# 3 s and a 12 s AWSPREVIOUS grace period. The rotation function is this build's binary in
# AUTHSERVER_LAMBDA_MODE=rotation under cargo-lambda's Runtime API emulator; RotateSecret on moto
# stages AWSPENDING and the drill delivers the four steps with its token, as Secrets Manager does.
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
  local old="drill-svc-$RANDOM$RANDOM-old" alice_pw="drill-alice-$RANDOM$RANDOM" port url
  local secret delivery arn token grace=12 cost=(--m-cost 19456 --t-cost 2)
  step "local AWS endpoint (moto server)"
  start_moto
  secret="authserver/drill-$RANDOM$RANDOM/credentials"
  delivery="${secret%/credentials}/delivery/svc-billing"

  step "store: svc-billing (service account, delivery secret $delivery) and alice; 'authserver users push'"
  aws_py "$MOTO_URL" "$secret" "$delivery" "$old" <<'PY'
import boto3, sys
c = boto3.client("secretsmanager", endpoint_url=sys.argv[1])
c.create_secret(Name=sys.argv[2], SecretString="{}")
c.create_secret(Name=sys.argv[3], SecretString=sys.argv[4])
PY
  "$PY" "$ROOT/scripts/drills/drillkit.py" users "$WORK/users.json" \
    "svc-billing:ACTIVE:$(printf '%s\n' "$old" | "$BIN" hash-password "${cost[@]}")" \
    "alice:ACTIVE:$(printf '%s\n' "$alice_pw" | "$BIN" hash-password "${cost[@]}")" \
    --delivery "svc-billing=$delivery"
  clean_env
  "${CLEAN_ENV[@]}" AUTHSERVER_STORE_ENDPOINT_URL="$MOTO_URL" \
    "$BIN" users push --secret-id "$secret" "$WORK/users.json" >"$WORK/push.log" 2>&1 ||
    fail "users push: $(tail -n 3 "$WORK/push.log")"
  ok "users push: $(tail -n 1 "$WORK/push.log")"
  arn=$(aws_py "$MOTO_URL" "$secret" <<'PY'
import boto3, sys
print(boto3.client("secretsmanager", endpoint_url=sys.argv[1]).describe_secret(SecretId=sys.argv[2])["ARN"])
PY
)

  port=$(free_port)
  url="http://127.0.0.1:$port"
  step "start authserver serve on 127.0.0.1:$port: secrets_manager store, version check 3 s, AWSPREVIOUS grace $grace s"
  server_start server "$port" AUTHSERVER_STORE_KIND=secrets_manager AUTHSERVER_STORE_SECRET_ID="$arn" \
    AUTHSERVER_STORE_ENDPOINT_URL="$MOTO_URL" AUTHSERVER_STORE_VERSION_CHECK_SECONDS=3 \
    AUTHSERVER_STORE_PREVIOUS_GRACE_SECONDS="$grace" \
    AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    AWS_REGION="$AWS_REGION" AWS_EC2_METADATA_DISABLED=true -- ||
    fail "server did not start: $(tail -n 3 "$WORK/server.log")"
  local v0
  v0=$(store_version "$url")
  ok "server up, serving version $v0"
  rotation_function_start "$arn" AUTHSERVER_STORE_VERSION_CHECK_SECONDS=3 AUTHSERVER_ROTATION_SETTLE_SECONDS=1

  step "baseline: alice, prompt and late (svc-billing, old password), 10 requests/s each; scraping every $SCRAPE_SECONDS s"
  (umask 077 && printf '%s\n' "$old" >"$WORK/prompt.pw" && printf '%s\n' "$old" >"$WORK/late.pw")
  phase baseline
  scraper_start "$url"
  traffic_start alice legit "$url" --user alice --password "$alice_pw" --rate 10
  traffic_start prompt legit "$url" --user svc-billing --password-file "$WORK/prompt.pw" --rate 10
  traffic_start late legit "$url" --user svc-billing --password-file "$WORK/late.pw" --rate 10
  wait_scrapes baseline 3

  step "rotation: RotateSecret (moto stages AWSPENDING), then the four steps back to back"
  token=$(rotation_begin "$arn") || fail "RotateSecret failed"
  info "token (pending version): $token"
  phase pending
  rotation_step createSecret "$arn" "$token"
  rotation_step setSecret "$arn" "$token"
  rotation_step testSecret "$arn" "$token"
  # Back to back, as Secrets Manager runs the steps: only the function's own settle time lies
  # between the pending version appearing and a client reading the new password as current.
  step "rotation: finishSecret (waits rotation.settle_seconds, then AWSCURRENT moves; the old password becomes AWSPREVIOUS)"
  local t0 t_fin t_pick v
  t0=$(date +%s)
  rotation_step finishSecret "$arn" "$token"
  t_fin=$(date +%s%N)
  (umask 077 && secret_value "$delivery" AWSCURRENT >"$WORK/new.pw") || fail "no AWSCURRENT in $delivery"
  cp "$WORK/new.pw" "$WORK/prompt.tmp" && mv "$WORK/prompt.tmp" "$WORK/prompt.pw"
  phase finished
  [ "$(cat "$WORK/new.pw")" != "$old" ] || fail "the delivery secret still holds the old password"
  ok "finishSecret took $(($(date +%s) - t0)) s; prompt client switched to the new AWSCURRENT password at once"
  for _ in $(seq 1 200); do
    v=$(store_version "$url")
    [ "$v" = "$token" ] && break
    sleep 0.05
  done
  [ "$v" = "$token" ] || fail "the server still serves $v 10 s after finishSecret"
  t_pick=$((($(date +%s%N) - t_fin) / 1000000))
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

  step "checks: what clients saw"
  local c p bad
  for c in alice prompt late; do
    for p in baseline pending finished switched; do
      [ "$(traffic_count "$c" "$p" all)" -gt 0 ] || fail "$c sent nothing in $p"
      bad=$(traffic_count "$c" "$p" not200)
      [ "$bad" = 0 ] || fail "$c got $bad failed answers in $p: $(traffic_summary "$c" "$p")"
    done
    info "$c: $(for p in baseline pending finished switched; do printf '%s %s; ' "$p" "$(traffic_count "$c" "$p" all)"; done)"
  done
  ok "zero failed valid requests: every answer 200, for every client in every phase"
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
  local code until=$((t_fin / 1000000000 + grace + 2))
  while [ "$(date +%s)" -lt "$until" ]; do sleep 0.5; done
  code=$(printf 'Authorization: Basic %s\n' "$(printf '%s:%s' svc-billing "$old" | base64 -w0)" |
    curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H @- "$url/auth/validate")
  [ "$code" = 401 ] || fail "the old password answered $code after the grace period"
  code=$(printf 'Authorization: Basic %s\n' "$(printf '%s:%s' svc-billing "$(cat "$WORK/new.pw")" | base64 -w0)" |
    curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H @- "$url/auth/validate")
  [ "$code" = 200 ] || fail "the new password answered $code"
  ok "after the grace period: old password 401, new password 200"

  step "checks: logs (runbook checks 3 and 4) and no secret in them"
  log_has "$WORK/server.log" '"message":"credential secret version loaded"' "version loads logged"
  log_has "$WORK/server.log" "\"version\":\"$token\"" "the new version in the server log"
  local n
  n=$(grep -c '"message":"rotation step"' "$WORK/rotation-fn.log" || true)
  [ "$n" -ge 4 ] || fail "the rotation function logged $n \"rotation step\" lines, expected one per step"
  ok "rotation function: $n \"rotation step\" lines"
  local f
  for f in "$WORK/server.log" "$WORK/rotation-fn.log" "$WORK/push.log"; do
    grep -qF -- "$(cat "$WORK/new.pw")" "$f" && fail "the new password is in $(basename "$f")"
    grep -qF -- "$old" "$f" && fail "the old password is in $(basename "$f")"
    grep -qF -- '$argon2id$' "$f" && fail "a password hash is in $(basename "$f")"
  done
  ok "no password and no hash in the server, rotation function or push output"

  promtool_check \
    --silent AuthServerSuccessRatioLow@baseline \
    --silent AuthServerSuccessRatioLow@pending \
    --silent AuthServerSuccessRatioLow@switched \
    --silent AuthServerErrorsHigh@pending \
    --silent AuthServerErrorsHigh@switched \
    --silent AuthServerStoreFetchErrors@pending \
    --silent AuthServerStoreFetchErrors@switched \
    --true 'sum(increase(authserver_store_refresh_total[5m])) > bool 0@finished' \
    --true '(sum(increase(authserver_auth_failure_total[30m])) or vector(0)) == bool 0@switched'
}
