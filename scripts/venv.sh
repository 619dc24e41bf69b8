# Sourced by the test and tool scripts: one virtualenv at the repo root for every Python tool
# (moto server, cargo-lambda, ziglang, cfn-lint, checkov, schemathesis). Installs only what is
# missing, so a warm machine pays nothing.
VENV="${VENV:-$(pwd)/.venv}"

# ensure_venv [package...]: creates .venv and installs the given packages (default: all tools).
ensure_venv() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local want=("$@")
  [ ${#want[@]} -gt 0 ] || want=("moto[server]" cargo-lambda ziglang cfn-lint checkov schemathesis)
  local missing=()
  for pkg in "${want[@]}"; do
    "$VENV/bin/python" -m pip show -q "${pkg%%[*}" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
  fi
  export PATH="$VENV/bin:$PATH"
}
