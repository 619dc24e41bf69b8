#!/usr/bin/env python3
"""check-runbooks.py [--root DIR] [--bin BINARY | --metrics FILE]: the names docs/runbooks/*.md use must exist.

Checked against their single sources:
  alert names (AuthServer...)            deploy/prometheus/alerts.yml
  alarm / resource names (<svc>-<stage>-X, authserver-prod-X)   deploy/aws/authserver.yaml
  Prometheus series (authserver_...)     the binary's metric table (`authserver metrics-names`)
  CloudWatch metrics and Reason values   the same table (in `Metric{Reason=...}` and `Metric` forms)
  settings (`section.key`) and AUTHSERVER_* variables   config/default.toml (+ the aliases)
  template parameters named as `Name=` or listed in the template-parameter sentences   the template
  authserver subcommands                 the CLI (`authserver --help`), listed in CLI below
Names proposed in the runbooks' gap sections are listed in PROPOSED below.
Prints every unknown name with its file and line; exit status 1 if there is any.
"""
import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import metric_listing  # noqa: E402  (scripts/lib, shared with check-metric-names.py)

PROPOSED = {"AuthServerBansHigh", "bans-high", "ExistingCredentialSecretArn"}
# Resource-name suffixes of <svc>-<stage>-X that are not alarms (functions, topics, API, ...).
RESOURCES = {"proxy", "authorizer", "rotation", "compliance", "regulation", "async-dlq", "critical", "warning",
             "edge", "http", "rest", "secrets", "data", "dashboard", "oauth-signing"}
CLI = {"serve", "hash-password", "users add", "users disable", "users enable", "users remove", "users list", "users oauth",
       "users hash", "users push", "users pull", "config check", "config default", "audit verify",
       "ops cache-status", "ops cache-purge", "ops alarms", "ops alarms test", "compliance check", "lambda",
       "keys generate", "keys rotate", "keys list", "keys remove"}
ALIASES = {"CREDENTIAL_SECRET_ARN", "CACHE_TTL_MINUTES", "LOG_LEVEL", "AUTHSERVER_LAMBDA_MODE", "AUTHSERVER_STAGE",
           "AUTHSERVER_SERVICE", "AUTHSERVER_USER_HASH_KEY_SECRET_ARN", "AUTHSERVER_REGULATION_TABLE",
           "AUTHSERVER_CONFIG"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=Path(__file__).resolve().parents[2])
    ap.add_argument("--bin", type=Path, default=None, help="authserver binary to ask for the metric table")
    ap.add_argument("--metrics", type=Path, default=None, help="a saved `authserver metrics-names --format json`")
    args = ap.parse_args()
    root = Path(args.root)
    alerts = set(re.findall(r"^\s*- alert: (\S+)", (root / "deploy/prometheus/alerts.yml").read_text(), re.M))
    template = (root / "deploy/aws/authserver.yaml").read_text()
    alarms = set(re.findall(r"AlarmName: !Sub '\$\{ServiceName\}-\$\{Stage\}-([a-z0-9-]+)'", template))
    params = set(re.findall(r"^  ([A-Z][A-Za-z0-9]+):\n    Type:", template.split("\nRules:")[0], re.M))
    listing, _ = metric_listing.read_listing(args.metrics, args.bin, who="check-runbooks")
    prom = {m["prometheus"] for m in listing["metrics"]}
    cw = {m["cloudwatch"] for m in listing["metrics"]}
    reasons = set(listing["reasons"])
    settings, section = set(), None
    for line in (root / "config/default.toml").read_text().splitlines():
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            section = m.group(1)
        m = re.match(r"^(\w+)\s*=", line)
        if m and section:
            settings.add(f"{section}.{m.group(1)}")
    sections = {s.split(".")[0] for s in settings}
    envs = {f"AUTHSERVER_{s.replace('.', '_').upper()}" for s in settings} | ALIASES

    errors = []
    for path in sorted((root / "docs/runbooks").glob("*.md")):
        text = path.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            def bad(what, name):
                errors.append(f"{path.relative_to(root)}:{n}: unknown {what} {name!r}")
            for a in re.findall(r"\b(AuthServer[A-Z][A-Za-z]+)\b", line):
                if a not in alerts and a not in PROPOSED:
                    bad("Prometheus alert", a)
            for s in re.findall(r"(?:<svc>-<stage>|authserver-prod)-([a-z0-9][a-z0-9-]*[a-z0-9])", line):
                # A trailing region (dashboard <svc>-<stage>-<region>, Chatbot <svc>-<stage>-<region>-critical)
                s = re.sub(r"^[a-z]{2}(-gov)?-[a-z]+-\d(-|$)", "", s) or "dashboard"
                if s not in alarms and s not in RESOURCES and s not in PROPOSED and not s.startswith("warning-"):
                    bad("alarm/resource suffix", s)
                if s.startswith("warning-") and s not in alarms:
                    bad("composite alarm", s)
            for head, alts, tail in re.findall(r"\b(authserver_[a-z_]+)(?:\{([a-z,]+)\}([a-z_]*))?", line):
                for p in ([head + a + tail for a in alts.split(",")] if alts else [head]):
                    base = re.sub(r"_(bucket|sum|count)$", "", p)
                    if base not in prom:
                        bad("Prometheus series", p)
            for metric, reason in re.findall(r"`([A-Z][A-Za-z]+)\{Reason=([a-z_|\\]+)\}", line):
                if metric not in cw:
                    bad("CloudWatch metric", metric)
                for r in re.split(r"\\?\|", reason):
                    if r and r not in reasons:
                        bad("Reason", r)
            for r in re.findall(r'reason[=!]~?"([a-z_|]+)"', line):
                for x in r.split("|"):
                    if x not in reasons:
                        bad("reason label", x)
            for sec, key in re.findall(r"`([a-z]+)\.([a-z_]+)`", line):
                if sec in sections and f"{sec}.{key}" not in settings:
                    bad("setting", f"{sec}.{key}")
            for sec, key in re.findall(r"\b([a-z]+)\.([a-z_]+) = ", line):
                if sec in sections and f"{sec}.{key}" not in settings:
                    bad("setting", f"{sec}.{key}")
            for e in re.findall(r"\b((?:AUTHSERVER|CREDENTIAL|CACHE_TTL)_[A-Z_]*[A-Z])\b", line):
                if e not in envs and e != "AUTHSERVER_":
                    if not any(env.startswith(e) for env in envs):
                        bad("environment variable", e)
            for p in re.findall(r"(?<![{,A-Za-z])([A-Z][a-z][A-Za-z0-9]*)=(?:[a-z0-9<$\"'(]|true|false)", line):
                if p in params or p in {"Name", "Value", "Region", "KmsKeyId", "AttributeKey", "AttributeValue"}:
                    continue
                bad("template parameter", p)
            for cmd in re.findall(r"\bauthserver ((?:users|config|audit|ops|compliance) (?:alarms [a-z-]+|[a-z-]+)"
                                  r"|hash-password|serve|lambda)\b", line):
                if cmd not in CLI:
                    bad("authserver command", cmd)
    for e in errors:
        print(e)
    print(f"runbooks: {len(list((root / 'docs/runbooks').glob('*.md')))} files checked against alerts.yml "
          f"({len(alerts)} alerts), the template ({len(alarms)} alarms, {len(params)} parameters), metric table "
          f"({len(prom)} metrics), config ({len(settings)} settings): {len(errors)} unknown name(s)")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
