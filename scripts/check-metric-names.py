#!/usr/bin/env python3
"""Check that dashboards, alarms and alert rules use only the metrics the binary defines, that
every CloudWatch metric + dimension set they query is one the code really emits, and that both
dashboards show every metric.

The metric table comes from the binary itself: `authserver metrics-names --format json` (a hidden
subcommand printing crates/authserver/src/telemetry/names.rs as compiled), run through
`cargo run -q -p authserver` from the repo unless --bin or --metrics says otherwise.

Checks (each failure is reported with file and context; exit status 1 on any failure):

CloudWatch (deploy/aws/*.yaml|*.yml|*.json, CloudFormation):
  * every metric in the `AuthServer` namespace used by an alarm (MetricName/Namespace/Dimensions,
    also inside Metrics[].MetricStat.Metric), a dashboard metric row, or a SEARCH() expression
    exists in the table;
  * its dimension set is one the real emitter writes: some golden EMF blob
    (crates/authserver/tests/fixtures/emf-golden.jsonl, written by the test
    crates/authserver/tests/lambda_emf_golden.rs from the Lambda handlers) carries the metric in a
    directive with exactly these dimensions; metrics published by PutMetricData rather than EMF
    (reach `put_metric_data`: ComplianceViolations) count under the dimension sets the table
    declares for them;
  * Reason dimension values are among the table's reasons and some blob emits them;
  * every metric of the table appears on a CloudWatch dashboard, except the standalone-only ones
    (emitted by the standalone server's /metrics only).
Prometheus (deploy/prometheus/*.yml|*.yaml) and Grafana (deploy/grafana/*.json):
  * every `authserver_*` series is a table name, or a histogram name + _bucket/_sum/_count
    (a bare histogram name is an error: no such series exists), and the server really exposes
    it: crates/authserver/tests/fixtures/prometheus-golden.txt (the series of /metrics after the
    same cases, written by the same test) has it;
  * reason="..." / reason=~"a|b" label values are among the table's reasons;
  * every metric of the table appears on the Grafana dashboard.

Usage: scripts/check-metric-names.py [--root DIR] [--bin BINARY | --metrics FILE] [--golden FILE]
       scripts/check-metric-names.py --negative CASE     # a planted mistake must be caught
       scripts/check-metric-names.py --list-negatives
Needs PyYAML (installed with cfn-lint in the repo's .venv).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import metric_listing  # noqa: E402  (scripts/lib, shared with drills/check-runbooks.py)

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
REPO = Path(__file__).resolve().parent.parent
# The shape of `authserver metrics-names --format json` this script reads (its `format` field).
LISTING_FORMAT = 1
KINDS = ("counter", "gauge", "histogram")
REACHES = ("emf", "put_metric_data", "standalone_only")


class Emitted:
    """What the real emitter writes: metric -> dimension sets, and (metric, dim) -> values."""

    def __init__(self, path: Path, put_metric_data: dict[str, list[frozenset]]):
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
        # Published with PutMetricData (the compliance function), not EMF: as the table declares.
        for name, sets in put_metric_data.items():
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


def read_listing(args) -> tuple[dict, str]:
    """The metric table (the JSON of `authserver metrics-names`) and where it came from."""
    return metric_listing.read_listing(args.metrics, args.bin, who="check-metric-names")


class Module:
    """The metric table the binary defines (telemetry/names.rs as compiled)."""

    def __init__(self, doc, where: str):
        self.where = where
        try:
            self._read(doc)
        except (KeyError, TypeError, AttributeError) as e:
            raise SystemExit(f"check-metric-names: the metric list from {where} lacks {e!s}: its shape "
                             "changed - update this script")

    def _read(self, doc) -> None:
        if doc.get("format") != LISTING_FORMAT:
            raise SystemExit(f"check-metric-names: the metric list from {self.where} has format "
                             f"{doc.get('format')!r}, this script reads {LISTING_FORMAT}: its shape changed - "
                             "update this script")
        self.namespace = doc["namespace"]
        self.reasons = set(doc["reasons"])
        self.metrics = []
        for m in doc["metrics"]:
            metric = {k: m[k] for k in ("cloudwatch", "prometheus", "kind", "unit", "reach",
                                        "standalone_only", "cloudwatch_dimensions", "prometheus_labels")}
            if metric["kind"] not in KINDS or metric["reach"] not in REACHES:
                raise SystemExit(f"check-metric-names: {metric['cloudwatch']}: unknown kind {metric['kind']!r} "
                                 f"or reach {metric['reach']!r} in the list from {self.where}")
            self.metrics.append(metric)
        if not self.metrics or not self.reasons or not isinstance(self.namespace, str):
            raise SystemExit(f"check-metric-names: the metric list from {self.where} is empty")
        self.standalone_only = {m["cloudwatch"] for m in self.metrics if m["standalone_only"]}
        self.put_metric_data = {m["cloudwatch"]: [frozenset(s) for s in m["cloudwatch_dimensions"]]
                                for m in self.metrics if m["reach"] == "put_metric_data"}
        self.by_cw = {m["cloudwatch"]: m for m in self.metrics}
        self.by_prom = {m["prometheus"]: m for m in self.metrics}
        if len(self.by_cw) != len(self.metrics) or len(self.by_prom) != len(self.metrics):
            raise SystemExit(f"check-metric-names: duplicate metric names in the list from {self.where}")

    def prom_base(self, token: str) -> str | None:
        """The module's Prometheus metric a series token belongs to, or None."""
        if token in self.by_prom:
            return token
        for suffix in HIST_SUFFIXES:
            if token.endswith(suffix):
                base = token[: -len(suffix)]
                if base in self.by_prom and self.by_prom[base]["kind"] == "histogram":
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
            self.err(where, f"CloudWatch metric {self.mod.namespace}/{name} is not defined in the metric table "
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
            self.err(where, f"{name} Reason={reason!r} is not one of the table's reasons {sorted(self.mod.reasons)}")
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
        # Metrics only the standalone server emits (standalone_only in the table) need no CloudWatch row.
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
                    self.err(f"{where}:{lineno}", f"Prometheus series {token!r} is not defined in the metric table{hint}")
                    continue
                if self.mod.by_prom[base]["kind"] == "histogram" and token == base:
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
                        self.err(f"{where}:{lineno}", f"reason {alt!r} is not one of the table's reasons")

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


# ----------------------------------------------------------------------------------- negative tests
T, P, G = "deploy/aws/authserver.yaml", "deploy/prometheus/alerts.yml", "deploy/grafana/authserver.json"
LIST = "metrics.json"  # the binary's metric list, written into the temp root
STOREFETCH_DIMS = ("MetricName: StoreFetchError\n      Dimensions: [{Name: Service, Value: !Ref ServiceName}, "
                   "{Name: Stage, Value: !Ref Stage}]")
AUTHSUCCESS_DIMS = ("MetricName: AuthSuccess\n              Dimensions: [{Name: Service, Value: !Ref ServiceName}, "
                    "{Name: Stage, Value: !Ref Stage}]")
NEW_THING = {"id": "NewThing", "cloudwatch": "NewThing", "prometheus": "authserver_new_thing_total", "kind": "counter",
             "unit": "Count", "help": "x", "reach": "emf", "standalone_only": False,
             "cloudwatch_dimensions": [["Service", "Stage"]], "prometheus_labels": []}


def _metric(doc, name):
    return next(m for m in doc["metrics"] if m["cloudwatch"] == name)


# name: (file, old, new, expected message[, "all"]) for text edits of a copied file, or
# (LIST, edit(doc), expected message) for an edit of the metric list the binary printed.
NEGATIVES = {
    "alarm-unknown-metric": (T, "MetricName: StoreFetchError\n", "MetricName: StoreFetchErrors\n", "StoreFetchErrors is not defined"),
    "alarm-bad-reason": (T, "{Name: Reason, Value: wrong_password}", "{Name: Reason, Value: wrong_pass}", "is not one of the table's reasons"),
    "alarm-extra-dimension": (T, AUTHSUCCESS_DIMS, AUTHSUCCESS_DIMS[:-1] + ", {Name: Country, Value: DE}]", "dimensions"),
    "dashboard-missing-metric": (T, '                  ["AuthServer", "Bans", "Service", "${ServiceName}", "Stage", "${Stage}", {"stat": "Sum", "label": "bans issued"}],\n',
                                 "", "missing from the CloudWatch dashboard: Bans"),
    "dashboard-unknown-metric": (T, '"AuthServer", "ColdStart"', '"AuthServer", "ColdStarts"', "ColdStarts is not defined"),
    "dashboard-search-unknown-metric": (T, 'MetricName=\\"Requests\\"', 'MetricName=\\"Request\\"', "Request is not defined"),
    "prom-unknown-series": (P, "authserver_store_fetch_error_total", "authserver_store_fetch_errors_total", "is not defined in the metric table"),
    "prom-bare-histogram": (P, "authserver_latency_seconds_bucket", "authserver_latency_seconds", "histogram"),
    "prom-bad-reason": (P, 'reason=~"overloaded|store_unavailable"', 'reason=~"overloaded|store_down"', "is not one of the table's reasons"),
    "grafana-missing-metric": (G, "authserver_bans_total", "authserver_rate_limited_total", "missing from the Grafana dashboard: authserver_bans_total"),
    "grafana-unknown-series": (G, "authserver_cold_start_total", "authserver_cold_starts_total", "is not defined in the metric table"),
    # A metric added to the binary's table that no dashboard shows.
    "module-new-metric": (LIST, lambda doc: doc["metrics"].append(NEW_THING), "missing from the CloudWatch dashboard: NewThing"),
    # The listing's shape changes: refused, not half read.
    "module-format-drift": (LIST, lambda doc: doc.update(format=LISTING_FORMAT + 1), "shape changed"),
    "module-field-dropped": (LIST, lambda doc: doc["metrics"][0].pop("reach"), "shape changed"),
    # A standalone-only metric that stops being one must get a CloudWatch dashboard row.
    "module-standalone-flag-read": (LIST, lambda doc: _metric(doc, "TlsCertNotAfter").update(standalone_only=False),
                                    "missing from the CloudWatch dashboard: TlsCertNotAfter"),
    # How the table says a metric reaches CloudWatch is read: not PutMetricData, so EMF must carry it.
    "module-reach-read": (LIST, lambda doc: _metric(doc, "ComplianceViolations").update(reach="emf"),
                          "ComplianceViolations dimensions ['Service', 'Stage'] are never emitted together"),
    # A dimension set the emitter never writes (CloudWatch would return no data; the alarm never fires).
    "alarm-dimension-set-never-emitted": (T, STOREFETCH_DIMS, "MetricName: StoreFetchError\n      Dimensions: "
                                          "[{Name: Service, Value: !Ref ServiceName}]", "never emitted together"),
    # The emitter stops writing a metric that an alarm and the dashboard watch (every blob loses it).
    "emitter-drops-alarmed-metric": (GOLDEN, '{"Name":"Bans","Unit":"Count"},', "",
                                     "Bans dimensions ['Service', 'Stage'] are never emitted together", "all"),
    # /metrics stops exposing a series that alert rules and Grafana query.
    "server-drops-alerted-series": (PROM_GOLDEN, "authserver_bans_total\n", "", "'authserver_bans_total' is never exposed"),
}


def negative(case: str, args) -> int:
    """Copy deploy/, the golden files and the metric list to a temp root, plant one mistake, and
    require the checker to fail on it with the expected message."""
    if case not in NEGATIVES:
        raise SystemExit(f"check-metric-names: no negative case {case!r} (see --list-negatives)")
    doc, _ = read_listing(args)
    rel, *change = NEGATIVES[case]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "deploy", root / "deploy")
        for golden in (GOLDEN, PROM_GOLDEN):
            (root / golden).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / golden, root / golden)
        if rel == LIST:
            edit, expected = change
            edit(doc)
        else:
            old, new, expected, *every = change
            f = root / rel
            text = f.read_text(encoding="utf-8")
            if old not in text:
                raise SystemExit(f"negative case {case}: its anchor text is no longer in {rel} (update the case)")
            f.write_text(text.replace(old, new) if every else text.replace(old, new, 1), encoding="utf-8")
        (root / LIST).write_text(json.dumps(doc), encoding="utf-8")
        r = subprocess.run([sys.executable, __file__, "--root", str(root), "--metrics", str(root / LIST)],
                           capture_output=True, text=True, check=False)
    out = r.stdout + r.stderr
    print(out)
    if r.returncode == 0:
        raise SystemExit(f"{case}: check-metric-names.py accepted the broken copy")
    if expected not in out:
        raise SystemExit(f"{case}: failed, but without the expected message {expected!r}")
    print(f"INFO: negative {case}: caught ({expected})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO, help="directory holding deploy/ (default: the repo)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--bin", type=Path, default=None,
                     help="an authserver binary to ask for the metric list (default: cargo run -p authserver)")
    src.add_argument("--metrics", type=Path, default=None,
                     help="the metric list as `authserver metrics-names --format json` printed it")
    ap.add_argument("--golden", type=Path, default=None, help=f"golden EMF blobs (default: ROOT/{GOLDEN})")
    ap.add_argument("--prometheus-golden", type=Path, default=None,
                    help=f"golden Prometheus series (default: ROOT/{PROM_GOLDEN})")
    ap.add_argument("--negative", metavar="CASE", help="plant mistake CASE in a temp copy; it must be caught")
    ap.add_argument("--list-negatives", action="store_true", help="print the negative cases")
    args = ap.parse_args()
    if args.list_negatives:
        print("\n".join(NEGATIVES))
        return 0
    if args.negative:
        return negative(args.negative, args)
    root = args.root.resolve()
    mod = Module(*read_listing(args))
    emitted = Emitted(args.golden or root / GOLDEN, mod.put_metric_data)
    emitted.load_prometheus(args.prometheus_golden or root / PROM_GOLDEN)
    chk = Checker(root, mod, emitted)
    chk.check_cloudformation()
    chk.check_prometheus()
    chk.check_grafana()
    if chk.errors:
        print(f"check-metric-names: FAIL: {len(chk.errors)} problem(s) against the metric list from {mod.where}:",
              file=sys.stderr)
        for e in chk.errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print(f"check-metric-names: OK: {len(mod.metrics)} metrics from {mod.where} (namespace {mod.namespace}); "
          f"CloudWatch alarms/templates use {len(chk.cw_alarms)} (every dimension set emitted per "
          f"{emitted.blobs} golden EMF blobs), dashboard shows {len(chk.cw_dashboard)}/{len(mod.metrics)}; "
          f"Prometheus rules use {len(chk.prom_rules)}; Grafana shows {len(chk.grafana)}/{len(mod.metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
