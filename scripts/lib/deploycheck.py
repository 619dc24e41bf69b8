#!/usr/bin/env python3
"""The checks of deploy/ that scripts/test-deploy.sh runs (with the .venv interpreter: PyYAML).
Each prints what it found; lines starting with "INFO: " are the one-line results the test
shows; exit status non-zero on a failure.

    deploycheck.py params-validate TEMPLATE PARAMFILE
        The parameter file (AWS CLI format) against the template's Parameters and our stage rules.
    deploycheck.py params-lintfile TEMPLATE PARAMFILE OUT
        The file in cfn-lint's format (CommaDelimitedList values as JSON lists).
    deploycheck.py params-render TEMPLATE PARAMFILE OUT
        The template with each parameter's Default set to the file's value (for checkov).
    deploycheck.py checkov-variant REPORT VARIANT
    deploycheck.py checkov-unused REPORT TEMPLATE
        No failed check and no unjustified skip in one variant; every inline skip still used.
    deploycheck.py alert-coverage RULES TESTS
        Every alert fires in some promtool test and is silent in the healthy one.
    deploycheck.py inhibit CONFIG ALERTMANAGER
        Live inhibition on a loopback Alertmanager whose receivers are stripped.
    deploycheck.py doc-coverage TEMPLATE DOC
        DOC names every parameter, environment variable and IAM action of the template.
"""

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml


# ------------------------------------------------------------------------------- parameters
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
    class L(yaml.SafeLoader):
        pass

    L.add_multi_constructor("!", lambda l, s, n: None)
    return yaml.load(Path(path).read_text(), Loader=L)["Parameters"]


def value_errors(k, s, item):
    errs = []
    if "AllowedValues" in s and item not in [str(a) for a in s["AllowedValues"]]:
        errs.append(f"{k}={item!r} not in AllowedValues {s['AllowedValues']}")
    if "AllowedPattern" in s and not re.fullmatch(s["AllowedPattern"], item):
        errs.append(f"{k}={item!r} does not match {s['AllowedPattern']}")
    if s["Type"] == "Number":
        try:
            n = float(item)
        except ValueError:
            return errs + [f"{k}={item!r} is not a number"]
        if "MinValue" in s and n < float(s["MinValue"]):
            errs.append(f"{k}={item} < MinValue {s['MinValue']}")
        if "MaxValue" in s and n > float(s["MaxValue"]):
            errs.append(f"{k}={item} > MaxValue {s['MaxValue']}")
    return errs


def params_validate(a):
    tpl, pf = a.template, a.paramfile
    spec, vals, errs = template_params(tpl), load_params(pf), []
    stem = Path(pf).stem
    errs += [f"unknown parameter {k}" for k in vals if k not in spec]
    errs += [f"required parameter {k} missing" for k, s in spec.items() if "Default" not in s and k not in vals]
    for k, v in vals.items():
        s = spec.get(k)
        if not s:
            continue
        for item in v.split(",") if s["Type"] == "CommaDelimitedList" else [v]:
            errs += value_errors(k, s, item)
    if vals.get("Stage") != stem:
        errs.append(f"Stage={vals.get('Stage')!r} but the file is {stem}.json")
    if vals.get("Stage") == "prod" and vals.get("ApiThrottlingBurstLimit") != "500":
        errs.append("prod must allow the 500 RPS burst (ApiThrottlingBurstLimit=500)")
    if vals.get("Stage") == "prod" and vals.get("LatencyP95ThresholdMs") != "120":
        errs.append("prod P95 alarm threshold must be 120 ms")
    if errs:
        sys.exit(f"{pf}:\n  " + "\n  ".join(errs))
    print(f"INFO: {pf}: {len(vals)} parameters valid against {tpl}")


def params_lintfile(a):
    # cfn-lint wants CommaDelimitedList values as JSON lists; the AWS CLI format has "a,b,c".
    spec, vals = template_params(a.template), load_params(a.paramfile)
    Path(a.out).write_text(json.dumps([{"ParameterKey": k, "ParameterValue": v.split(",")
                                        if spec[k]["Type"] == "CommaDelimitedList" else v} for k, v in vals.items()]))


def params_render(a):
    # The template with each parameter's Default replaced by the file's value, so that checkov
    # (which resolves Conditions from defaults) scans what that stage deploys. Text-level edit:
    # comments, including checkov:skip, stay in place.
    vals = load_params(a.paramfile)
    lines = Path(a.template).read_text().split("\n")
    start = lines.index("Parameters:")
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and lines[i][0] not in " #")
    for key, val in vals.items():
        idx = [i for i in range(start + 1, end) if re.fullmatch(rf"  {key}:\s*", lines[i])]
        if len(idx) != 1:
            sys.exit(f"parameter {key} not found in {a.template}")
        i, j, done = idx[0], idx[0] + 1, False
        while j < end and (lines[j].startswith("    ") or not lines[j].strip()):
            if lines[j].startswith("    Default:"):
                lines[j] = "    Default: " + json.dumps(val)
                done = True
            j += 1
        if not done:
            lines.insert(i + 1, "    Default: " + json.dumps(val))
            end += 1
    Path(a.out).write_text("\n".join(lines))


# ---------------------------------------------------------------------------------- checkov
def checkov_results(path):
    report = json.loads(Path(path).read_text() or "null")
    if report is None:
        sys.exit("checkov produced no report (see its stderr)")
    reports = report if isinstance(report, list) else [report]
    reports = [r for r in reports if r.get("check_type") == "cloudformation"]
    if not reports:
        sys.exit("checkov report has no cloudformation section")
    if reports[0]["summary"].get("parsing_errors"):
        sys.exit(f"checkov parsing errors: {reports[0].get('parsing_errors') or reports[0]['summary']}")
    return reports[0]["results"]


def checkov_variant(a):
    res, v = checkov_results(a.report), a.variant
    p, f, s = ([c for c in res[kind] if Path(c["file_path"]).stem == v]
               for kind in ("passed_checks", "failed_checks", "skipped_checks"))
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


def checkov_unused(a):
    # Every checkov:skip comment in the template is used by at least one variant.
    res = checkov_results(a.report)
    declared, resource = set(), None
    for line in Path(a.template).read_text().split("\n"):
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m:
            resource = m.group(1)
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


# --------------------------------------------------------------------------------- Prometheus
def alert_coverage(a):
    rules = [r["alert"] for g in yaml.safe_load(open(a.rules))["groups"] for r in g["rules"] if "alert" in r]
    fires, silent_healthy = set(), set()
    for t in yaml.safe_load(open(a.tests))["tests"]:
        for case in t.get("alert_rule_test", []):
            if case.get("exp_alerts"):
                fires.add(case["alertname"])
            elif "healthy" in t.get("name", ""):
                silent_healthy.add(case["alertname"])
    errs = [f"{r}: never expected to fire" for r in rules if r not in fires]
    errs += [f"{r}: not asserted silent on the healthy series" for r in rules if r not in silent_healthy]
    errs += [f"{r}: tested but not defined" for r in (fires | silent_healthy) - set(rules)]
    print("\n".join(errs) if errs else f"INFO: {len(rules)} alerts: each fires on bad series and stays silent on healthy ones")
    sys.exit(1 if errs else 0)


def am_alert(name, severity, group):
    return {"labels": {"alertname": name, "severity": severity, "service": "authserver", "group": group},
            "annotations": {"summary": name}}


def inhibit(a):
    cfg = yaml.safe_load(open(a.config))
    cfg["receivers"] = [{"name": r["name"]} for r in cfg["receivers"]]  # same routing, no integrations
    tmp = tempfile.mkdtemp(prefix="am-inhibit-")
    open(f"{tmp}/am.yml", "w").write(yaml.safe_dump(cfg))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([a.alertmanager, f"--config.file={tmp}/am.yml", f"--storage.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/am.log", "w"))
    base = f"http://127.0.0.1:{port}/api/v2"

    def req(method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=5) as resp:
            return json.loads(resp.read() or "null")

    try:
        for _ in range(150):
            try:
                req("GET", "/status")
                break
            except Exception:
                time.sleep(0.1)
        else:
            sys.exit("alertmanager did not start:\n" + open(f"{tmp}/am.log").read()[-3000:])
        req("POST", "/alerts", [am_alert("AuthServerLatencyP95High", "warning", "availability"),
                                am_alert("AuthServerLatencyP95HighSustained", "critical", "availability"),
                                am_alert("AuthServerStoreFetchErrors", "warning", "store")])
        want = {"AuthServerLatencyP95High": "suppressed", "AuthServerLatencyP95HighSustained": "active",
                "AuthServerStoreFetchErrors": "active"}
        got = {}
        for _ in range(100):
            got = {x["labels"]["alertname"]: x["status"]["state"] for x in req("GET", "/alerts")}
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
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ documentation
def tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


def env_and_actions(node, envs, actions):
    if isinstance(node, dict):
        if "Variables" in node and isinstance(node["Variables"], dict):
            envs.update(node["Variables"])
        for k, v in node.items():
            if k == "Action":
                for act in (v if isinstance(v, list) else [v]):
                    if isinstance(act, str) and ":" in act and act != "sts:AssumeRole":
                        actions.add(act)
            env_and_actions(v, envs, actions)
    elif isinstance(node, list):
        for v in node:
            env_and_actions(v, envs, actions)


def doc_coverage(a):
    doc = open(a.doc).read()

    class L(yaml.SafeLoader):
        pass

    L.add_multi_constructor("!", tagged)
    t = yaml.load(open(a.template), Loader=L)
    missing = [f"parameter {k}" for k in t["Parameters"] if f"`{k}`" not in doc]
    envs, actions = set(), set()
    for res in t["Resources"].values():
        if res.get("Type") in ("AWS::IAM::Role", "AWS::Lambda::Function"):
            env_and_actions(res.get("Properties", {}), envs, actions)
    missing += [f"environment variable {e}" for e in sorted(envs) if f"`{e}`" not in doc]
    # IAM actions: the doc may abbreviate "dynamodb:GetItem, PutItem", so the action name must appear.
    missing += [f"IAM action {x}" for x in sorted(actions)
                if not re.search(r"\b" + re.escape(x.split(":", 1)[1]) + r"\b", doc)]
    print("\n".join(missing) if missing else
          f"INFO: docs name all {len(t['Parameters'])} parameters, {len(envs)} env vars, {len(actions)} IAM actions")
    sys.exit(1 if missing else 0)


# --------------------------------------------------------------------------------------- main
COMMANDS = {
    "params-validate": (params_validate, ["template", "paramfile"]),
    "params-lintfile": (params_lintfile, ["template", "paramfile", "out"]),
    "params-render": (params_render, ["template", "paramfile", "out"]),
    "checkov-variant": (checkov_variant, ["report", "variant"]),
    "checkov-unused": (checkov_unused, ["report", "template"]),
    "alert-coverage": (alert_coverage, ["rules", "tests"]),
    "inhibit": (inhibit, ["config", "alertmanager"]),
    "doc-coverage": (doc_coverage, ["template", "doc"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (func, params) in COMMANDS.items():
        p = sub.add_parser(name)
        for param in params:
            p.add_argument(param)
        p.set_defaults(func=func)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
