#!/usr/bin/env python3
"""Check that dashboards, alarms and alert rules use only the metric names defined in
crates/authserver/src/telemetry/names.rs, that every CloudWatch metric + dimension set they query
is one the code really emits, and that both dashboards show every metric.

Checks (each failure is reported with file and context; exit status 1 on any failure):

CloudWatch (deploy/aws/*.yaml|*.yml|*.json, CloudFormation):
  * every metric in the `AuthServer` namespace used by an alarm (MetricName/Namespace/Dimensions,
    also inside Metrics[].MetricStat.Metric), a dashboard metric row, or a SEARCH() expression
    exists in the module;
  * its dimension set is one the real emitter writes: some golden EMF blob
    (crates/authserver/tests/fixtures/emf-golden.jsonl, written by the test
    crates/authserver/tests/lambda_emf_golden.rs from the Lambda handlers) carries the metric in a
    directive with exactly these dimensions; ComplianceViolations, published by PutMetricData
    rather than EMF, is taken from PUT_METRIC_DATA below;
  * Reason dimension values are among the module's REASONS and some blob emits them;
  * every metric of the module appears on a CloudWatch dashboard, except those listed in its
    STANDALONE_ONLY (emitted by the standalone server's /metrics only).
Prometheus (deploy/prometheus/*.yml|*.yaml) and Grafana (deploy/grafana/*.json):
  * every `authserver_*` series is a module name, or a histogram name + _bucket/_sum/_count
    (a bare histogram name is an error: no such series exists), and the server really exposes
    it: crates/authserver/tests/fixtures/prometheus-golden.txt (the series of /metrics after the
    same cases, written by the same test) has it;
  * reason="..." / reason=~"a|b" label values are among REASONS;
  * every metric of the module appears on the Grafana dashboard.

Usage: scripts/check-metric-names.py [--root DIR] [--names FILE] [--golden FILE]
Needs PyYAML (installed with cfn-lint in the repo's .venv).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("check-metric-names: PyYAML is missing; run with .venv/bin/python (scripts/test-deploy.sh installs it)")

HIST_SUFFIXES = ("_bucket", "_sum", "_count")
PROM_TOKEN = re.compile(r"(?<![A-Za-z0-9_:])authserver_[A-Za-z0-9_:]*")
REASON_MATCHER = re.compile(r'\breason\s*(=~|!~|!=|=)\s*"([^"]*)"')
SEARCH_EXPR = re.compile(r"SEARCH\(\s*'\{([^}]*)\}([^']*)'")
SEARCH_METRIC = re.compile(r'MetricName\s*=\s*"?([A-Za-z0-9_.-]+)"?')
SUB_VAR = re.compile(r"\$\{[^}]*\}")
GOLDEN = "crates/authserver/tests/fixtures/emf-golden.jsonl"
PROM_GOLDEN = "crates/authserver/tests/fixtures/prometheus-golden.txt"
# Metrics published with PutMetricData instead of EMF, with their dimension sets: the compliance
# function's (crates/authserver-aws/src/compliance/mod.rs `publish`).
PUT_METRIC_DATA = {"ComplianceViolations": [frozenset({"Service", "Stage"})]}


class Emitted:
    """What the real emitter writes: metric -> dimension sets, and (metric, dim) -> values."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise SystemExit(f"check-metric-names: golden EMF blobs {path} not found; generate them with "
                             "`UPDATE_GOLDEN=1 cargo test -p authserver --test lambda_emf_golden`")
        self.path = path
        self.sets: dict[str, set[frozenset]] = {}
        self.values: dict[tuple[str, str], set[str]] = {}
        self.blobs = 0
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                blob = record.get("blob", record)
                directives = blob["_aws"]["CloudWatchMetrics"]
            except (ValueError, KeyError, TypeError) as e:
                raise SystemExit(f"check-metric-names: {path}:{lineno} is not an EMF blob: {e}")
            self.blobs += 1
            for d in directives:
                for dimset in d.get("Dimensions", []):
                    key = frozenset(dimset)
                    for m in d.get("Metrics", []):
                        name = m.get("Name")
                        self.sets.setdefault(name, set()).add(key)
                        for dim in dimset:
                            if isinstance(blob.get(dim), str):
                                self.values.setdefault((name, dim), set()).add(blob[dim])
        if not self.blobs:
            raise SystemExit(f"check-metric-names: {path} holds no EMF blobs")
        for name, sets in PUT_METRIC_DATA.items():
            self.sets.setdefault(name, set()).update(sets)

    def load_prometheus(self, path: Path) -> None:
        """The series names and `reason` label values /metrics exposes (prometheus-golden.txt)."""
        if not path.is_file():
            raise SystemExit(f"check-metric-names: golden Prometheus series {path} not found; generate them with "
                             "`UPDATE_GOLDEN=1 cargo test -p authserver --test lambda_emf_golden`")
        self.prom_path = path
        self.prom_series: set[str] = set()
        self.prom_reasons: set[str] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            name = line.split("{", 1)[0].strip()
            if name:
                self.prom_series.add(name)
            self.prom_reasons.update(re.findall(r'reason="([^"]*)"', line))

    def describe(self, name: str) -> str:
        sets = sorted(sorted(s) for s in self.sets.get(name, set()))
        return ", ".join("{" + ",".join(s) + "}" for s in sets) or "never"


class Module:
    """What names.rs defines."""

    def __init__(self, path: Path):
        text = path.read_text(encoding="utf-8")
        ns = re.search(r'pub\s+const\s+NAMESPACE\s*:\s*&str\s*=\s*"([^"]+)"\s*;', text)
        if not ns:
            raise SystemExit(f"check-metric-names: no `pub const NAMESPACE` in {path}")
        self.namespace = ns.group(1)
        block = re.search(r"\nmetrics!\s*\{(.*?)\n\}", text, re.S)
        if not block:
            raise SystemExit(f"check-metric-names: no `metrics! {{ ... }}` invocation in {path}")
        body = block.group(1)
        entry = re.compile(
            r'^\s*([A-Z][A-Z0-9_]*)\s*=\s*\(\s*"([^"]+)"\s*,\s*"([^"]+)"\s*,\s*([A-Za-z]+)\s*,\s*"([^"]*)"\s*,'
            r'\s*(None|Some\(\s*"([^"]+)"\s*\))',
            re.M,
        )
        self.metrics = []
        for m in entry.finditer(body):
            self.metrics.append({
                "id": m.group(1), "cloudwatch": m.group(2), "prometheus": m.group(3),
                "kind": m.group(4), "unit": m.group(5), "dimension": m.group(7),
            })
        declared = len(re.findall(r"^\s*[A-Z][A-Z0-9_]*\s*=\s*\(", body, re.M))
        if not self.metrics or declared != len(self.metrics):
            raise SystemExit(
                f"check-metric-names: parsed {len(self.metrics)} of {declared} metric entries in {path}; "
                "the `ID = (\"CloudWatchName\", \"prometheus_name\", Kind, \"Unit\", None|Some(\"Dim\"), ...` "
                "shape changed - update this script")
        reasons = re.search(r"pub\s+const\s+REASONS\s*:\s*&\[&str\]\s*=\s*&\[(.*?)\];", text, re.S)
        self.reasons = set(re.findall(r'"([^"]+)"', reasons.group(1))) if reasons else set()
        if not self.reasons:
            raise SystemExit(f"check-metric-names: no REASONS list in {path}")
        standalone = re.search(r"pub\s+const\s+STANDALONE_ONLY\s*:\s*&\[&str\]\s*=\s*&\[(.*?)\];", text, re.S)
        self.standalone_only = set(re.findall(r'"([^"]+)"', standalone.group(1))) if standalone else set()
        self.by_cw = {m["cloudwatch"]: m for m in self.metrics}
        unknown = self.standalone_only - set(self.by_cw)
        if unknown:
            raise SystemExit(f"check-metric-names: STANDALONE_ONLY names no metric: {', '.join(sorted(unknown))}")
        self.by_prom = {m["prometheus"]: m for m in self.metrics}
        for kind in {m["kind"] for m in self.metrics}:
            if kind not in ("Counter", "Gauge", "Histogram"):
                raise SystemExit(f"check-metric-names: unknown metric kind {kind!r} in {path}")

    def prom_base(self, token: str) -> str | None:
        """The module's Prometheus metric a series token belongs to, or None."""
        if token in self.by_prom:
            return token
        for suffix in HIST_SUFFIXES:
            if token.endswith(suffix):
                base = token[: -len(suffix)]
                if base in self.by_prom and self.by_prom[base]["kind"] == "Histogram":
                    return base
        return None


class Checker:
    def __init__(self, root: Path, module: Module, emitted: Emitted):
        self.root = root
        self.mod = module
        self.emitted = emitted
        self.errors: list[str] = []
        self.cw_dashboard: set[str] = set()
        self.cw_alarms: set[str] = set()
        self.grafana: set[str] = set()
        self.prom_rules: set[str] = set()
        self.dashboards = 0
        self.grafana_files = 0

    def err(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    # ------------------------------------------------------------- CloudWatch
    def check_cw_metric(self, where: str, name, dims: dict | None, sink: set) -> None:
        if not isinstance(name, str):
            self.err(where, f"MetricName {name!r} in namespace {self.mod.namespace} is not a literal string; cannot verify")
            return
        metric = self.mod.by_cw.get(name)
        if metric is None:
            self.err(where, f"CloudWatch metric {self.mod.namespace}/{name} is not defined in names.rs "
                            f"(known: {', '.join(sorted(self.mod.by_cw))})")
            return
        sink.add(name)
        if dims is None:
            return
        # CloudWatch matches dimension sets exactly: a query by a set the code never emits
        # together reads no data, and an alarm on it never fires.
        if frozenset(dims) not in self.emitted.sets.get(name, set()):
            self.err(where, f"{name} dimensions {sorted(dims)} are never emitted together: no golden EMF blob "
                            f"({self.rel(self.emitted.path)}) has them (emitted: {self.emitted.describe(name)})")
        reason = dims.get("Reason")
        if isinstance(reason, str) and reason not in self.mod.reasons:
            self.err(where, f"{name} Reason={reason!r} is not one of names.rs REASONS {sorted(self.mod.reasons)}")
        elif isinstance(reason, str) and reason not in self.emitted.values.get((name, "Reason"), set()):
            self.err(where, f"{name} Reason={reason!r} appears in no golden EMF blob: nothing emits it")

    def check_search(self, where: str, text: str, sink: set) -> None:
        for m in SEARCH_EXPR.finditer(text):
            schema = [p.strip() for p in m.group(1).split(",")]
            if not schema or schema[0] != self.mod.namespace:
                continue
            names = SEARCH_METRIC.findall(m.group(2))
            if not names:
                self.err(where, f"SEARCH over {self.mod.namespace} without MetricName=...: cannot verify ({m.group(0)})")
            for name in names:
                self.check_cw_metric(where + " SEARCH", name, {d: None for d in schema[1:]}, sink)

    def walk_cfn(self, node, where: str) -> None:
        if isinstance(node, dict):
            ns = node.get("Namespace")
            if "Namespace" in node and not isinstance(ns, str):
                self.err(where, f"Namespace {ns!r} is not a literal string; cannot verify")
            elif ns == self.mod.namespace:
                dims = None
                if "Dimensions" in node:
                    dims = {}
                    raw = node["Dimensions"]
                    if not isinstance(raw, list):
                        self.err(where, f"Dimensions {raw!r} is not a literal list; cannot verify")
                        raw = []
                    for d in raw:
                        if not isinstance(d, dict) or not isinstance(d.get("Name"), str):
                            self.err(where, f"dimension {d!r} has no literal Name; cannot verify")
                            continue
                        dims[d["Name"]] = d.get("Value")
                else:
                    dims = {}
                self.check_cw_metric(where, node.get("MetricName"), dims, self.cw_alarms)
            for key, value in node.items():
                self.walk_cfn(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self.walk_cfn(value, f"{where}[{i}]")
        elif isinstance(node, str):
            self.check_search(where, node, self.cw_alarms)

    def dashboard_body(self, body, where: str) -> str | None:
        if isinstance(body, str):
            return body
        if isinstance(body, dict) and list(body) == ["Fn::Sub"]:
            sub = body["Fn::Sub"]
            if isinstance(sub, str):
                return sub
            if isinstance(sub, list) and sub and isinstance(sub[0], str):
                return sub[0]
        self.err(where, "DashboardBody must be a string or Fn::Sub of a string to be checked")
        return None

    def check_dashboard(self, body: str, where: str) -> None:
        self.dashboards += 1
        try:
            doc = json.loads(SUB_VAR.sub("1", body))
        except json.JSONDecodeError as e:
            self.err(where, f"DashboardBody is not valid JSON after substitution: {e}")
            return
        widgets = doc.get("widgets")
        if not isinstance(widgets, list) or not widgets:
            self.err(where, "dashboard has no widgets")
            return
        for wi, widget in enumerate(widgets):
            props = widget.get("properties", {})
            title = props.get("title", f"widget {wi}")
            wwhere = f"{where} widget {wi} ({title})"
            if widget.get("type") != "metric":
                continue
            prev: list = []
            for ri, row in enumerate(props.get("metrics", [])):
                rwhere = f"{wwhere} row {ri}"
                if not isinstance(row, list) or not row:
                    self.err(rwhere, f"metric row {row!r} is not a non-empty list")
                    continue
                if isinstance(row[0], dict):
                    expr = row[0].get("expression", "")
                    self.check_search(rwhere, expr, self.cw_dashboard)
                    continue
                fields = [x for x in row if not isinstance(x, dict)]
                if fields and fields[0] == "...":
                    fields = list(prev)
                else:
                    fields = [prev[i] if f == "." and i < len(prev) else f for i, f in enumerate(fields)]
                prev = fields
                if len(fields) < 2 or len(fields) % 2 != 0:
                    self.err(rwhere, f"metric row {fields!r} is not [Namespace, MetricName, (DimName, DimValue)*]")
                    continue
                if fields[0] != self.mod.namespace:
                    continue
                dims = {fields[i]: fields[i + 1] for i in range(2, len(fields), 2)}
                self.check_cw_metric(rwhere, fields[1], dims, self.cw_dashboard)

    def check_cloudformation(self) -> None:
        files = sorted(p for ext in ("*.yaml", "*.yml", "*.json") for p in (self.root / "deploy/aws").glob(ext))
        if not files:
            self.err("deploy/aws", "no CloudFormation templates found")
        for path in files:
            where = self.rel(path)
            try:
                doc = load_cfn(path)
            except Exception as e:  # noqa: BLE001
                self.err(where, f"cannot parse: {e}")
                continue
            if not isinstance(doc, dict) or "Resources" not in doc:
                continue  # not a template (e.g. parameter files live in params/)
            for name, res in doc["Resources"].items():
                rwhere = f"{where} Resources/{name}"
                if res.get("Type") == "AWS::CloudWatch::Dashboard":
                    body = self.dashboard_body(res.get("Properties", {}).get("DashboardBody"), rwhere)
                    if body is not None:
                        self.check_dashboard(body, rwhere)
                else:
                    self.walk_cfn(res, rwhere)
        if self.dashboards == 0:
            self.err("deploy/aws", "no AWS::CloudWatch::Dashboard found")
        # Metrics only the standalone server emits (names.rs STANDALONE_ONLY) need no CloudWatch row.
        missing = sorted(set(self.mod.by_cw) - self.cw_dashboard - self.mod.standalone_only)
        if missing:
            self.err("deploy/aws", f"metrics missing from the CloudWatch dashboard: {', '.join(missing)}")

    # ------------------------------------------------------------- Prometheus
    def check_prom_text(self, text: str, where: str, sink: set) -> None:
        for lineno, line in enumerate(text.splitlines(), 1):
            for token in PROM_TOKEN.findall(line):
                base = self.mod.prom_base(token)
                if base is None:
                    hint = ""
                    if token in self.mod.by_prom:
                        hint = " (histogram: use _bucket, _sum or _count)"
                    self.err(f"{where}:{lineno}", f"Prometheus series {token!r} is not defined in names.rs{hint}")
                    continue
                if self.mod.by_prom[base]["kind"] == "Histogram" and token == base:
                    self.err(f"{where}:{lineno}", f"{token!r} is a histogram: no series has the bare name; "
                                                  "use _bucket, _sum or _count")
                    continue
                if token not in self.emitted.prom_series:
                    self.err(f"{where}:{lineno}", f"Prometheus series {token!r} is never exposed by the server "
                                                  f"(not in {self.rel(self.emitted.prom_path)})")
                    continue
                sink.add(base)
            for op, value in REASON_MATCHER.findall(line):
                alternatives = value.split("|") if op in ("=~", "!~") else [value]
                for alt in alternatives:
                    if alt in ("", ".*", ".+"):
                        continue
                    if not re.fullmatch(r"[a-z_]+", alt):
                        self.err(f"{where}:{lineno}", f"reason matcher {value!r}: cannot verify {alt!r}")
                    elif alt not in self.mod.reasons:
                        self.err(f"{where}:{lineno}", f"reason {alt!r} is not one of names.rs REASONS")

    def check_prometheus(self) -> None:
        files = sorted(p for ext in ("*.yml", "*.yaml") for p in (self.root / "deploy/prometheus").glob(ext))
        if not files:
            self.err("deploy/prometheus", "no Prometheus files found")
        for path in files:
            text = path.read_text(encoding="utf-8")
            try:
                yaml.safe_load(text)
            except yaml.YAMLError as e:
                self.err(self.rel(path), f"invalid YAML: {e}")
            self.check_prom_text(text, self.rel(path), self.prom_rules)

    def check_grafana(self) -> None:
        files = sorted((self.root / "deploy/grafana").glob("*.json"))
        if not files:
            self.err("deploy/grafana", "no Grafana dashboards found")
        for path in files:
            self.grafana_files += 1
            where = self.rel(path)
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                self.err(where, f"invalid JSON: {e}")
                continue
            self.check_prom_text(path.read_text(encoding="utf-8"), where, self.grafana)
        missing = sorted(set(self.mod.by_prom) - self.grafana)
        if missing:
            self.err("deploy/grafana", f"metrics missing from the Grafana dashboard: {', '.join(missing)}")


def load_cfn(path: Path):
    """YAML/JSON CloudFormation with short-form intrinsic tags (!Ref, !Sub, ...)."""

    class CfnLoader(yaml.SafeLoader):
        pass

    def construct(loader, tag_suffix, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if tag_suffix == "Ref":
            return {"Ref": value}
        if tag_suffix == "Condition":
            return {"Condition": value}
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {"Fn::" + tag_suffix: value}

    CfnLoader.add_multi_constructor("!", construct)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)


def main() -> int:
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=repo, help="directory holding deploy/ (default: the repo)")
    ap.add_argument("--names", type=Path, default=None,
                    help="names.rs (default: ROOT/crates/authserver/src/telemetry/names.rs)")
    ap.add_argument("--golden", type=Path, default=None, help=f"golden EMF blobs (default: ROOT/{GOLDEN})")
    ap.add_argument("--prometheus-golden", type=Path, default=None,
                    help=f"golden Prometheus series (default: ROOT/{PROM_GOLDEN})")
    args = ap.parse_args()
    root = args.root.resolve()
    names = args.names or root / "crates/authserver/src/telemetry/names.rs"
    if not names.is_file():
        print(f"check-metric-names: FAIL: {names} not found", file=sys.stderr)
        return 1
    mod = Module(names)
    emitted = Emitted(args.golden or root / GOLDEN)
    emitted.load_prometheus(args.prometheus_golden or root / PROM_GOLDEN)
    chk = Checker(root, mod, emitted)
    chk.check_cloudformation()
    chk.check_prometheus()
    chk.check_grafana()
    if chk.errors:
        print(f"check-metric-names: FAIL: {len(chk.errors)} problem(s) against {chk.rel(names)}:", file=sys.stderr)
        for e in chk.errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print(f"check-metric-names: OK: {len(mod.metrics)} metrics in {chk.rel(names)} (namespace {mod.namespace}); "
          f"CloudWatch alarms/templates use {len(chk.cw_alarms)} (every dimension set emitted per "
          f"{emitted.blobs} golden EMF blobs), dashboard shows {len(chk.cw_dashboard)}/{len(mod.metrics)}; "
          f"Prometheus rules use {len(chk.prom_rules)}; Grafana shows {len(chk.grafana)}/{len(mod.metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
