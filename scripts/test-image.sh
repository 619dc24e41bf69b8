#!/usr/bin/env bash
# The container image test (scripts/test, step "container image"; docs/deployment.md, "Container
# image"): builds the host architecture's image with scripts/image under a throwaway tag,
# inspects it (user, entrypoint, cmd, ports, labels, healthcheck, size) and runs it:
#   - with podman when it can run containers here: --read-only, all capabilities dropped, ports
#     published on 127.0.0.1 only; the image's own config (0.0.0.0 inside the container);
#   - otherwise the exact files of the image (`buildah mount`), chrooted read-only as UID 65532
#     with the image's environment and config, in a network namespace of its own.
# Either way: /health, /ready, /auth/validate with the example users, `authserver healthcheck`
# inside, no password in the output. Removes every container and image it made.
#
#   scripts/test-image.sh          # last line: "image: N passed, M failed"
#   IMAGE_TEST_RUNNER=chroot scripts/test-image.sh   # skip podman (or =podman: require it)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
source scripts/lib/setup.sh
CHECK=scripts/lib/image_check.py

NAME="localhost/authserver-test:$$"
CNAME="authserver-test-$$"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test-image.XXXXXX")
PASSED=0
FAILED=0
SERVER_PID=""
WORK_CTR=""

cleanup() {
  podman rm -f -t 2 "$CNAME" >/dev/null 2>&1 || true
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  [ -z "$WORK_CTR" ] || buildah rm "$WORK_CTR" >/dev/null 2>&1 || true
  buildah rmi -f "$NAME" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
# Adds a checker's "N passed, M failed" summary to ours.
tally() {
  local line
  line=$(tail -n 1 "$1")
  [[ $line =~ [0-9]+\ passed,\ [0-9]+\ failed$ ]] || { fail "checker crashed: $line"; return 0; }
  PASSED=$((PASSED + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
  FAILED=$((FAILED + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
}

build() {
  local t0 t1
  t0=$(date +%s)
  IMAGE_OUT="$TMP" scripts/image --tag "$NAME" 2>&1 | tee "$TMP/build.log" | tail -n 20
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "image: scripts/image failed"; exit 1; }
  t1=$(date +%s)
  echo "image: built in $((t1 - t0)) s; $(buildah images --format '{{.Size}}' "$NAME") in containers storage"
}

inspect_image() {
  local version
  version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
  buildah inspect --type image "$NAME" >"$TMP/inspect.json"
  python3 "$CHECK" inspect "$TMP/inspect.json" "$version" | tee "$TMP/inspect.out" || true
  tally "$TMP/inspect.out"
}

# Both runners: the HTTP checks against BASE (and ADMIN), then the image's healthcheck command.
# IN: the command prefix that reaches the server's network (nsenter for the chroot runner).
IN=()
probe() {
  "${IN[@]}" python3 "$SETUP_TOOLS_PY" wait-http "$1/health" --timeout 30 ||
    { fail "server answered /health within 30 s"; return 1; }
  "${IN[@]}" python3 "$CHECK" probe "$1" "$2" | tee "$TMP/probe.out" || true
  tally "$TMP/probe.out"
}

# The password and its Basic encoding must appear nowhere in what the server printed.
no_secret_in() {
  local b64
  b64=$(printf 'alice:wonderland' | base64)
  if grep -q -e wonderland -e "$b64" "$1"; then fail "a password appears in the server output"; else
    ok "no password in the server output ($(wc -l <"$1") lines)"
  fi
}

podman_works() {
  [ "${IMAGE_TEST_RUNNER:-}" != chroot ] || return 1
  apt_install_for podman=podman >/dev/null || return 1
  podman run --rm --read-only --network none "$NAME" --version >"$TMP/podman-try.log" 2>&1
}

run_podman() {
  local port admin
  port=$(python3 "$SETUP_TOOLS_PY" free-port)
  admin=$(python3 "$SETUP_TOOLS_PY" free-port)
  podman run -d --name "$CNAME" --read-only --cap-drop ALL --security-opt no-new-privileges \
    -p "127.0.0.1:$port:8080" -p "127.0.0.1:$admin:9090" "$NAME" >/dev/null
  probe "http://127.0.0.1:$port" "http://127.0.0.1:$admin" || true
  if podman exec "$CNAME" /authserver healthcheck; then ok "authserver healthcheck inside: exit 0"; else
    fail "authserver healthcheck inside"
  fi
  if podman healthcheck run "$CNAME"; then ok "the image's HEALTHCHECK: healthy"; else fail "HEALTHCHECK"; fi
  local user
  user=$(podman top "$CNAME" huser user | tail -n 1)
  if [[ $user == *65532* ]]; then ok "process runs as 65532 ($user)"; else fail "process user: $user"; fi
  podman logs "$CNAME" >"$TMP/server.log" 2>&1
  no_secret_in "$TMP/server.log"
}

# The image's files, mounted by buildah, bound read-only in private mount and network namespaces
# and chrooted into as 65532:65532 with the image's environment only: the binary, paths and config
# (0.0.0.0:8080, 0.0.0.0:9090) the image runs, unreachable from the host. Client commands join the
# server's network namespace with nsenter.
run_chroot() {
  local mnt env_args
  WORK_CTR=$(buildah from --pull=never "$NAME")
  mnt=$(buildah mount "$WORK_CTR")
  mapfile -t env_args < <(python3 -c 'import json, sys
print("\n".join(json.load(open(sys.argv[1]))["Docker"]["config"]["Env"]))' "$TMP/inspect.json")
  # shellcheck disable=SC2016 # expanded by that sh: $0 is the mount point
  local jail='ip link set lo up && mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" &&
    exec chroot --userspec=65532:65532 "$0" "$@"'
  env -i "${env_args[@]}" unshare --net --mount sh -c "$jail" "$mnt" /authserver serve \
    >"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  # Until unshare has run, /proc/PID/ns/net is still the host's: never probe the host's 8080.
  local i
  for i in $(seq 50); do
    [ "$(readlink "/proc/$SERVER_PID/ns/net")" = "$(readlink /proc/self/ns/net)" ] || break
    sleep 0.1
  done
  [ "$i" -lt 50 ] || { fail "server in its own network namespace"; return 0; }
  IN=(nsenter --net="/proc/$SERVER_PID/ns/net")
  probe "http://127.0.0.1:8080" "http://127.0.0.1:9090" || true
  if env -i "${env_args[@]}" "${IN[@]}" "$(command -v chroot)" --userspec=65532:65532 "$mnt" \
    /authserver healthcheck; then
    ok "authserver healthcheck (the image's binary, chrooted): exit 0"
  else fail "authserver healthcheck"; fi
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  no_secret_in "$TMP/server.log"
}

apt_install_for buildah=buildah
echo "image: building the $(uname -m) image as $NAME"
build
inspect_image
if podman_works; then
  echo "image: running it with podman $(podman --version | awk '{print $3}') (--read-only, 127.0.0.1 ports)"
  run_podman
else
  [ "${IMAGE_TEST_RUNNER:-}" != podman ] || { cat "$TMP/podman-try.log"; fail "podman cannot run it"; }
  echo "image: podman cannot run containers here ($(tail -n 1 "$TMP/podman-try.log" 2>/dev/null));"
  echo "image: running the image's own files instead (buildah mount, read-only, chroot as 65532, own netns)"
  run_chroot
fi
echo "image: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
