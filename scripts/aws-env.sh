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
#   AUTHSERVER_REQUIRE_AWS_TESTS=1 so those tests fail instead of skipping
# Works on a fresh Debian machine as root with only Rust and Python: installs python3-venv
# when the interpreter cannot create virtualenvs, then moto[server], cargo-lambda and ziglang
# into .venv (only what is missing).

_AWS_ENV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_AWS_ENV_MOTO_PID=""

# Debian's python3 lacks ensurepip (the venv module's bootstrap) until python3-venv is installed.
_aws_env_python_venv() {
  if [ -x "${VENV:-$_AWS_ENV_ROOT/.venv}/bin/python" ] || python3 -c 'import ensurepip' 2>/dev/null; then
    return 0
  fi
  echo "aws-env: python3 cannot create virtualenvs; installing python3-venv" >&2
  local minor
  minor=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  apt-get update -qq >/dev/null && { apt-get install -y -qq "python${minor}-venv" >/dev/null 2>&1 ||
    apt-get install -y -qq python3-venv >/dev/null; }
}

_aws_env_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until the moto server answers HTTP (any status) or 60 s pass.
_aws_env_wait_http() {
  local url=$1 i
  for i in $(seq 1 300); do
    if python3 - "$url" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
except urllib.error.HTTPError:
    pass
PY
    if [ -n "$_AWS_ENV_MOTO_PID" ] && ! kill -0 "$_AWS_ENV_MOTO_PID" 2>/dev/null; then
      return 1
    fi
    sleep 0.2
  done
  return 1
}

start_aws_env() {
  export VENV="${VENV:-$_AWS_ENV_ROOT/.venv}"
  _aws_env_python_venv || { echo "aws-env: cannot install python3-venv" >&2; return 1; }
  if ! declare -F ensure_venv >/dev/null; then
    # shellcheck source=scripts/venv.sh
    source "$_AWS_ENV_ROOT/scripts/venv.sh"
  fi
  ensure_venv 'moto[server]' cargo-lambda ziglang || { echo "aws-env: pip install failed" >&2; return 1; }

  local port log
  port=$(_aws_env_free_port)
  log="${TMPDIR:-/tmp}/authserver-moto-$port.log"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  _AWS_ENV_MOTO_PID=$!
  if ! _aws_env_wait_http "http://127.0.0.1:$port"; then
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
  export AUTHSERVER_REQUIRE_AWS_TESTS=1
  echo "aws-env: moto server at $MOTO_URL (pid $_AWS_ENV_MOTO_PID); cargo-lambda at $CARGO_LAMBDA"
}

stop_aws_env() {
  if [ -n "$_AWS_ENV_MOTO_PID" ]; then
    kill "$_AWS_ENV_MOTO_PID" 2>/dev/null || true
    wait "$_AWS_ENV_MOTO_PID" 2>/dev/null || true
    _AWS_ENV_MOTO_PID=""
  fi
  unset MOTO_URL AUTHSERVER_REQUIRE_AWS_TESTS
}
