# shellcheck shell=bash
# Shared by the drills; sourced by scripts/drill (which sets ROOT, BIN, PY, WORK, DRILL and the
# ERR/EXIT traps). Narration, processes the drill started, the server, scrapes and promtool.

# ---------------------------------------------------------------------------------- narration
step() { printf '== step: %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '   FAIL: %s\n' "$*"; exit 1; }
elapsed() { echo $(($(date +%s) - DRILL_T0)); }

# ---------------------------------------------------------------------------------- processes
# Every process a drill starts goes through spawn, so cleanup can stop exactly those, by pid.
declare -gA PROC_PID=()
declare -ga PROC_ORDER=()

# spawn NAME COMMAND...: runs COMMAND in the background, output in $WORK/NAME.log.
spawn() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PROC_PID[$name]=$!
  PROC_ORDER+=("$name")
}

running() { [ -n "${PROC_PID[$1]:-}" ] && kill -0 "${PROC_PID[$1]}" 2>/dev/null; }

# stop NAME: SIGTERM, up to 10 s to finish (the server drains), then SIGKILL. Returns 0.
stop() {
  local name=$1 pid=${PROC_PID[$1]:-} i
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
  unset "PROC_PID[$name]"
}

stop_all() {
  local i
  for ((i = ${#PROC_ORDER[@]} - 1; i >= 0; i--)); do stop "${PROC_ORDER[$i]}"; done
}

free_port() { python3 "$ROOT/scripts/lib/tools.py" free-port; }

# ------------------------------------------------------------------------------------- server
# The environment of the server: the caller's, minus every setting variable (AUTHSERVER_*, the
# brief's aliases, AWS endpoint variables), so a drill sees only the settings it sets.
clean_env() {
  local v
  CLEAN_ENV=(env)
  for v in $(compgen -e); do
    case $v in
      AUTHSERVER_* | CREDENTIAL_SECRET_ARN | CACHE_TTL_MINUTES | LOG_LEVEL | AWS_ENDPOINT_URL*) CLEAN_ENV+=(-u "$v") ;;
    esac
  done
}

# server_start NAME PORT [VAR=VALUE...] -- [serve arguments...]: starts `authserver serve` on
# 127.0.0.1:PORT and waits (20 s at most) until /health answers. Returns 1 when the process
# exits first (its log is $WORK/NAME.log).
# The admin listener (/metrics, /stats, the detailed /ready) gets a port of its own per main
# port, picked once so a restarted server keeps it; admin_url maps a main URL to it.
declare -A ADMIN_PORT_OF=()
server_start() {
  local name=$1 port=$2 i
  shift 2
  local vars=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do vars+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  clean_env
  [ -n "${ADMIN_PORT_OF[$port]:-}" ] || ADMIN_PORT_OF[$port]=$(free_port)
  spawn "$name" "${CLEAN_ENV[@]}" AUTHSERVER_LOG_FORMAT=json AUTHSERVER_ADMIN_LISTEN="127.0.0.1:${ADMIN_PORT_OF[$port]}" "${vars[@]}" \
    "$BIN" serve --listen "127.0.0.1:$port" "$@"
  for i in $(seq 1 200); do
    if ! running "$name"; then
      # shellcheck disable=SC2034 # SERVER_EXIT: read by the drills (the start-up exit status)
      wait "${PROC_PID[$name]}" 2>/dev/null && SERVER_EXIT=0 || SERVER_EXIT=$?
      unset "PROC_PID[$name]"
      return 1
    fi
    [ "$(http_status GET "http://127.0.0.1:$port/health")" = 200 ] && return 0
    sleep 0.1
  done
  fail "$name did not answer /health within 20 s (log: $WORK/$name.log)"
}

# http_status METHOD URL [curl args...]: prints the status code (000 when nothing answered).
http_status() {
  local method=$1 url=$2
  shift 2
  curl -s -o /dev/null -w '%{http_code}' -m 5 -X "$method" "$@" "$url" 2>/dev/null || true
}

# admin_url URL: the admin listener's URL of the server whose main URL is URL.
admin_url() {
  local port=${1##*:}
  port=${port%%/*}
  printf 'http://127.0.0.1:%s\n' "${ADMIN_PORT_OF[$port]:?no admin listener known for $1}"
}

# metric URL SERIES: the value of one series in the server's /metrics (exact series text; URL is
# the main URL, the admin listener is asked).
metric() {
  curl -s -m 5 "$(admin_url "$1")/metrics" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print "absent" }'
}

# --------------------------------------------------------------------------- phases and scrapes
# The scraper and the traffic generators label what they record with the content of
# $WORK/phase; `phase NAME` switches it.
phase() {
  printf '%s\n' "$1" >"$WORK/phase.tmp" && mv "$WORK/phase.tmp" "$WORK/phase"
  info "phase: $1 (t=$(elapsed) s)"
}

scrapes_in() {
  local n
  n=$(grep -c "\"phase\": \"$1\"" "$WORK/scrapes.jsonl" 2>/dev/null) || true
  echo "${n:-0}"
}

# wait_scrapes PHASE N: until N scrapes are recorded in PHASE (bounded: N+10 intervals).
wait_scrapes() {
  local p=$1 n=$2 limit
  limit=$(( $(date +%s) + (n + 10) * ${SCRAPE_SECONDS%.*} + 10 ))
  while [ "$(scrapes_in "$p")" -lt "$n" ]; do
    [ "$(date +%s)" -lt "$limit" ] || fail "only $(scrapes_in "$p") of $n scrapes in phase $p"
    sleep 0.2
  done
}

# scraper_start URL: scrapes the admin /metrics of the server at URL every $SCRAPE_SECONDS into $WORK/scrapes.jsonl.
scraper_start() {
  SCRAPE_URL=$(admin_url "$1")
  spawn scraper "$PY" "$ROOT/scripts/drills/drillkit.py" scrape "$SCRAPE_URL/metrics" "$WORK/scrapes.jsonl" \
    "$WORK/phase" "$SCRAPE_SECONDS"
}

# traffic_start NAME MODE URL ARGS...: a load generator; its answers by phase in $WORK/NAME.json.
traffic_start() {
  local name=$1 mode=$2 url=$3
  shift 3
  spawn "$name" "$PY" "$ROOT/scripts/drills/drillkit.py" traffic "$mode" "$url" "$WORK/$name.json" \
    "$WORK/phase" "$@"
}

# traffic_count NAME PHASE STATUS: answers with STATUS in PHASE ("ok2xx"/"not200" summarise).
traffic_count() { "$PY" "$ROOT/scripts/drills/drillkit.py" count "$WORK/$1.json" "$2" "$3"; }

# traffic_summary NAME PHASE: "N requests: 200 x a, 429 x b; P50 x ms, P99 y ms".
traffic_summary() { "$PY" "$ROOT/scripts/drills/drillkit.py" summary "$WORK/$1.json" "$2"; }

# ------------------------------------------------------------------------------------ promtool
# promtool_check ARGS...: builds $WORK/promtool-test.yml from the scrapes (drillkit.py promtest
# --fires/--silent/--true ...) and runs `promtool test rules` on it against
# deploy/prometheus/alerts.yml.
promtool_check() {
  stop scraper
  step "promtool: the alert rules in deploy/prometheus/alerts.yml over the $(wc -l <"$WORK/scrapes.jsonl") scrapes"
  if ! "$PY" "$ROOT/scripts/drills/drillkit.py" promtest --samples "$WORK/scrapes.jsonl" \
    --rules "$ROOT/deploy/prometheus/alerts.yml" --scrape-seconds "$SCRAPE_SECONDS" --name "$DRILL" \
    --url "$SCRAPE_URL" --out "$WORK/promtool-test.yml" "$@" >"$WORK/promtest.log" 2>&1; then
    sed 's/^/   | /' "$WORK/promtest.log"
    fail "could not build the promtool test from the scrapes"
  fi
  sed 's/^/   /' "$WORK/promtest.log"
  if promtool test rules "$WORK/promtool-test.yml" >"$WORK/promtool.log" 2>&1; then
    ok "promtool test rules: every assertion holds ($WORK/promtool-test.yml)"
  else
    sed 's/^/   | /' "$WORK/promtool.log" | head -n 60
    fail "promtool test rules failed: a signal the runbook relies on did not behave"
  fi
}

# log_has FILE TEXT WHAT: the server log contains TEXT (fixed string), or the drill fails.
log_has() {
  local n
  n=$(grep -cF -- "$2" "$1" || true)
  [ "$n" -gt 0 ] || fail "$3: no line with $2 in $(basename "$1")"
  ok "$3: $n log line(s) with $2"
}

# ------------------------------------------------------------------------------- local AWS
# moto OP ARGS...: a Secrets Manager call to the moto server (drillkit.py aws; boto3 in .venv).
moto() { "$VENV/bin/python" "$ROOT/scripts/drills/drillkit.py" aws "$MOTO_URL" "$@"; }

# start_moto: the moto server of the caller ($MOTO_URL, as scripts/test runs one) or a new one
# (scripts/aws-env.sh, stopped with the drill); exports the fake AWS credentials and region.
start_moto() {
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing-not-a-key}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing-not-a-secret}
  export AWS_REGION=${AWS_REGION:-us-east-1}
  if [ -n "${MOTO_URL:-}" ] && curl -s -o /dev/null -m 2 "$MOTO_URL/moto-api/"; then
    VENV=${VENV:-$ROOT/.venv}
    info "reusing the moto server at $MOTO_URL"
    return 0
  fi
  # shellcheck source=scripts/aws-env.sh
  source "$ROOT/scripts/aws-env.sh"
  CLEANUP_HOOKS+=(stop_aws_env)
  # Not in a pipeline: the moto server's pid and the exports must stay in this shell.
  start_aws_env >"$WORK/aws-env.log" 2>&1 || { cat "$WORK/aws-env.log"; fail "could not start the moto server"; }
  sed 's/^/   /' "$WORK/aws-env.log"
}

# ----------------------------------------------------------------------- rotation (Lambda)
# The rotation function as Lambda runs it: this build's binary with AUTHSERVER_LAMBDA_MODE=
# rotation under cargo-lambda's Runtime API emulator (started by start_aws_env: $CARGO_LAMBDA).
# Secrets Manager's part: RotateSecret on moto stages an empty AWSPENDING version and "invokes"
# a function registered in moto's Lambda (configuration only, nothing runs); the drill then
# delivers the four steps to the real function, with that version's id as the token, exactly as
# Secrets Manager would.

# rotation_function_start SECRET_ARN [VAR=VALUE...]: the emulator and the function process.
rotation_function_start() {
  local arn=$1 i
  shift
  [ -n "${CARGO_LAMBDA:-}" ] && [ -x "$CARGO_LAMBDA" ] || CARGO_LAMBDA="$VENV/bin/cargo-lambda"
  [ -x "$CARGO_LAMBDA" ] || fail "cargo-lambda not found (scripts/aws-env.sh installs it)"
  EMULATOR_PORT=$(free_port)
  # cargo-lambda reads the package's metadata: run it in the binary's crate.
  # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
  spawn emulator bash -c 'cd "$1/crates/authserver" && exec "$2" lambda watch --only-lambda-apis -A 127.0.0.1 -P "$3"' \
    _ "$ROOT" "$CARGO_LAMBDA" "$EMULATOR_PORT"
  for i in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$EMULATOR_PORT") 2>/dev/null && break
    running emulator || fail "the Lambda emulator exited: $(tail -n 5 "$WORK/emulator.log")"
    sleep 0.1
  done
  clean_env
  spawn rotation-fn "${CLEAN_ENV[@]}" AUTHSERVER_LOG_FORMAT=json AUTHSERVER_LAMBDA_MODE=rotation \
    CREDENTIAL_SECRET_ARN="$arn" AUTHSERVER_STORE_ENDPOINT_URL="$MOTO_URL" \
    AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    AWS_REGION="$AWS_REGION" AWS_EC2_METADATA_DISABLED=true \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$EMULATOR_PORT/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 "$@" "$BIN"
  sleep 0.3
  running rotation-fn || fail "the rotation function exited: $(tail -n 5 "$WORK/rotation-fn.log")"
  ok "rotation function (AUTHSERVER_LAMBDA_MODE=rotation) waiting on the Runtime API emulator, port $EMULATOR_PORT"
}

# rotation_begin SECRET_ARN: RotateSecret on moto (rotation function registered there, every 30
# days); prints the token, the id of the new AWSPENDING version.
rotation_begin() { moto rotate-begin "$1"; }

# rotation_step STEP SECRET_ARN TOKEN: one step through the emulator's invoke endpoint; fails
# the drill unless the function answers outcome "done".
rotation_step() {
  local out
  out=$(curl -s -m 60 -X POST -H 'Content-Type: application/json' \
    -d "{\"Step\": \"$1\", \"SecretId\": \"$2\", \"ClientRequestToken\": \"$3\"}" \
    "http://127.0.0.1:$EMULATOR_PORT/2015-03-31/functions/_/invocations") || true
  printf '%s' "$out" | grep -q '"outcome":"done"' || fail "rotation step $1: $out"
  ok "rotation step $1: $out"
}

# rotation_step_fails STEP SECRET_ARN TOKEN: one step that must fail; prints its error text.
rotation_step_fails() {
  local out
  out=$(curl -s -m 60 -X POST -H 'Content-Type: application/json' \
    -d "{\"Step\": \"$1\", \"SecretId\": \"$2\", \"ClientRequestToken\": \"$3\"}" \
    "http://127.0.0.1:$EMULATOR_PORT/2015-03-31/functions/_/invocations") || true
  printf '%s' "$out" | grep -q '"outcome":"done"' && fail "rotation step $1 succeeded; it had to fail"
  printf '%s' "$out"
}

# sm_call METHOD SECRET [KEY=VALUE...]: one Secrets Manager call on moto (string/int arguments).
sm_call() { moto call "$@"; }

# secret_value SECRET STAGE: the value of SECRET's version labelled STAGE (for files, not logs).
secret_value() { moto value "$1" "$2"; }

# secret_stages SECRET: "STAGE=VERSION ..." for each label, sorted.
secret_stages() { moto stages "$1"; }

# store_version URL: the credential secret version the server serves (/ready).
store_version() {
  curl -s -m 5 "$(admin_url "$1")/ready" | python3 "$ROOT/scripts/lib/tools.py" json-get store.version 2>/dev/null || true
}

# rotation_rig OLD_PASSWORD GRACE_SECONDS [NAME:STATUS:PHC ...] [VAR=VALUE ...]: the set-up of
# the rotation drills. moto; a credential secret holding the service account svc-billing
# (password OLD_PASSWORD, delivery secret <prefix>/delivery/svc-billing) and the other users,
# uploaded with `authserver users push`; `authserver serve` on it (secrets_manager store,
# version check every 3 s, AWSPREVIOUS grace GRACE_SECONDS, extra VAR=VALUE settings); the
# rotation function under the emulator (settle: one version check + 5 s). Sets RIG_ARN,
# RIG_DELIVERY, RIG_URL and RIG_VERSION (the version in service).
rotation_rig() {
  local old=$1 grace=$2 secret port entries=() vars=() a
  shift 2
  for a in "$@"; do
    if [[ $a =~ ^[A-Z_][A-Z0-9_]*= ]]; then vars+=("$a"); else entries+=("$a"); fi
  done
  step "local AWS endpoint (moto server)"
  start_moto
  secret="authserver/drill-$RANDOM$RANDOM/credentials"
  RIG_DELIVERY="${secret%/credentials}/delivery/svc-billing"
  step "store: svc-billing (service account, delivery secret $RIG_DELIVERY) and ${#entries[@]} other user(s); 'authserver users push'"
  moto create "$secret" --value={}
  moto create "$RIG_DELIVERY" --value="$old"
  "$PY" "$ROOT/scripts/drills/drillkit.py" users "$WORK/users.json" \
    "svc-billing:ACTIVE:$(printf '%s\n' "$old" | "$BIN" hash-password --m-cost 19456 --t-cost 2)" \
    "${entries[@]}" --delivery "svc-billing=$RIG_DELIVERY"
  clean_env
  "${CLEAN_ENV[@]}" AUTHSERVER_STORE_ENDPOINT_URL="$MOTO_URL" \
    "$BIN" users push --secret-id "$secret" "$WORK/users.json" >"$WORK/push.log" 2>&1 ||
    fail "users push: $(tail -n 3 "$WORK/push.log")"
  ok "users push: $(grep -v '^{' "$WORK/push.log" | tail -n 1)"
  RIG_ARN=$(moto arn "$secret")
  port=$(free_port)
  RIG_URL="http://127.0.0.1:$port"
  step "start authserver serve on 127.0.0.1:$port: secrets_manager store, version check 3 s, AWSPREVIOUS grace $grace s"
  server_start server "$port" AUTHSERVER_STORE_KIND=secrets_manager AUTHSERVER_STORE_SECRET_ID="$RIG_ARN" \
    AUTHSERVER_STORE_ENDPOINT_URL="$MOTO_URL" AUTHSERVER_STORE_VERSION_CHECK_SECONDS=3 \
    AUTHSERVER_STORE_PREVIOUS_GRACE_SECONDS="$grace" \
    AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    AWS_REGION="$AWS_REGION" AWS_EC2_METADATA_DISABLED=true "${vars[@]}" -- ||
    fail "server did not start: $(tail -n 3 "$WORK/server.log")"
  RIG_VERSION=$(store_version "$RIG_URL")
  ok "server up, serving version $RIG_VERSION"
  rotation_function_start "$RIG_ARN" AUTHSERVER_STORE_VERSION_CHECK_SECONDS=3 AUTHSERVER_ROTATION_SETTLE_SECONDS=1
}

# rotate_now SECRET_ARN: what `aws secretsmanager rotate-secret` sets off: RotateSecret, then the
# four steps back to back. Sets TOKEN (the new version).
rotate_now() {
  TOKEN=$(rotation_begin "$1") || fail "RotateSecret failed"
  info "RotateSecret: token (pending version) $TOKEN"
  local s
  for s in createSecret setSecret testSecret finishSecret; do
    rotation_step "$s" "$1" "$TOKEN"
  done
}

# wait_version URL VERSION: until the server serves VERSION (10 s at most); prints the ms it took.
wait_version() {
  local t0 i
  t0=$(date +%s%N)
  for i in $(seq 1 200); do
    [ "$(store_version "$1")" = "$2" ] && { echo $((($(date +%s%N) - t0) / 1000000)); return 0; }
    sleep 0.05
  done
  fail "the server still serves $(store_version "$1") 10 s later, not $2"
}

# validate_status URL USER PASSWORD_FILE: the status of one POST /auth/validate, the password read
# from a file and the header from stdin (neither on a command line).
validate_status() {
  printf 'Authorization: Basic %s\n' "$(printf '%s:%s' "$2" "$(cat "$3")" | base64 -w0)" |
    curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H @- "$1/auth/validate"
}

# no_secrets PASSWORD_FILE... -- LOG...: no password from the files, and no Argon2id hash, in
# any of the logs (the server's, the function's, the CLI's), or the drill fails.
no_secrets() {
  local pws=() f p
  while [ "$1" != "--" ]; do pws+=("$1"); shift; done
  shift
  for f in "$@"; do
    for p in "${pws[@]}"; do
      grep -qF -- "$(cat "$p")" "$f" && fail "a password ($(basename "$p")) is in $(basename "$f")"
    done
    # shellcheck disable=SC2016 # a literal: the PHC prefix
    grep -qF -- '$argon2id$' "$f" && fail "a password hash is in $(basename "$f")"
  done
  ok "no password and no hash in $(for f in "$@"; do printf '%s ' "$(basename "$f")"; done)"
}
