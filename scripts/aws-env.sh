# shellcheck shell=bash
# The local AWS test environment, sourced by scripts/test:
#
#   source scripts/aws-env.sh
#   start_aws_env     # tools in .venv, moto server on a free loopback port, env exported
#   ...               # cargo test: the moto and Lambda emulator tests now run (and must pass)
#   stop_aws_env      # stops what start_aws_env started
#
# start_aws_env exports:
#   MOTO_URL                       http://127.0.0.1:PORT of the moto server it started
#   CARGO_LAMBDA                   path of the cargo-lambda executable (emulator, invoke, build)
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION   fakes for the SDK
#   TESTS_REQUIRE_AWS=1            so those tests fail instead of skipping
# Works on a fresh Debian machine as root with only Rust and Python: scripts/lib/setup.sh
# installs python3-venv when needed, then moto[server], cargo-lambda and ziglang into .venv.

_AWS_ENV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_AWS_ENV_MOTO_PID=""
# shellcheck source=scripts/lib/setup.sh
source "$_AWS_ENV_ROOT/scripts/lib/setup.sh"

start_aws_env() {
  ensure_venv 'moto[server]' cargo-lambda ziglang || { echo "aws-env: set-up failed" >&2; return 1; }

  local port log
  port=$(python3 "$SETUP_TOOLS_PY" free-port)
  log="${TMPDIR:-/tmp}/authserver-moto-$port.log"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  _AWS_ENV_MOTO_PID=$!
  if ! python3 "$SETUP_TOOLS_PY" wait-http "http://127.0.0.1:$port/moto-api/" --pid "$_AWS_ENV_MOTO_PID"; then
    echo "aws-env: moto server did not start (log: $log)" >&2
    tail -n 20 "$log" >&2 || true
    stop_aws_env
    return 1
  fi

  export MOTO_URL="http://127.0.0.1:$port"
  export CARGO_LAMBDA="$VENV/bin/cargo-lambda"
  export AWS_ACCESS_KEY_ID="testing-not-a-key"
  export AWS_SECRET_ACCESS_KEY="testing-not-a-secret"
  export AWS_REGION="us-east-1"
  export TESTS_REQUIRE_AWS=1
  echo "aws-env: moto server at $MOTO_URL (pid $_AWS_ENV_MOTO_PID); cargo-lambda at $CARGO_LAMBDA"
}

stop_aws_env() {
  if [ -n "$_AWS_ENV_MOTO_PID" ]; then
    kill "$_AWS_ENV_MOTO_PID" 2>/dev/null || true
    wait "$_AWS_ENV_MOTO_PID" 2>/dev/null || true
    _AWS_ENV_MOTO_PID=""
  fi
  unset MOTO_URL TESTS_REQUIRE_AWS
}
