#!/usr/bin/env python3
"""Negative tests of scripts/check-metric-names.py, run by scripts/test-deploy.sh.

    metric_names_negative.py --list        the case names, one a line
    metric_names_negative.py REPO CASE     copy deploy/, names.rs and the golden fixtures of REPO
                                           to a temp root, break one thing (CASE), and require
                                           check-metric-names.py to fail with the expected message
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NAMES = "crates/authserver/src/telemetry/names.rs"
T, P, G = "deploy/aws/authserver.yaml", "deploy/prometheus/alerts.yml", "deploy/grafana/authserver.json"
E = "crates/authserver/tests/fixtures/emf-golden.jsonl"
PG = "crates/authserver/tests/fixtures/prometheus-golden.txt"
STOREFETCH_DIMS = ("MetricName: StoreFetchError\n      Dimensions: [{Name: Service, Value: !Ref ServiceName}, "
                   "{Name: Stage, Value: !Ref Stage}]")
AUTHSUCCESS_DIMS = ("MetricName: AuthSuccess\n              Dimensions: [{Name: Service, Value: !Ref ServiceName}, "
                    "{Name: Stage, Value: !Ref Stage}]")
CASES = {
  # name: (file, old, new, expected message)
  "alarm-unknown-metric": (T, "MetricName: StoreFetchError\n", "MetricName: StoreFetchErrors\n", "StoreFetchErrors is not defined"),
  "alarm-bad-reason": (T, "{Name: Reason, Value: wrong_password}", "{Name: Reason, Value: wrong_pass}", "is not one of names.rs REASONS"),
  "alarm-extra-dimension": (T, AUTHSUCCESS_DIMS, AUTHSUCCESS_DIMS[:-1] + ", {Name: Country, Value: DE}]", "dimensions"),
  "dashboard-missing-metric": (T, '                  ["AuthServer", "Bans", "Service", "${ServiceName}", "Stage", "${Stage}", {"stat": "Sum", "label": "bans issued"}],\n',
                               "", "missing from the CloudWatch dashboard: Bans"),
  "dashboard-unknown-metric": (T, '"AuthServer", "ColdStart"', '"AuthServer", "ColdStarts"', "ColdStarts is not defined"),
  "dashboard-search-unknown-metric": (T, 'MetricName=\\"Requests\\"', 'MetricName=\\"Request\\"', "Request is not defined"),
  "prom-unknown-series": (P, "authserver_store_fetch_error_total", "authserver_store_fetch_errors_total", "is not defined in names.rs"),
  "prom-bare-histogram": (P, "authserver_latency_seconds_bucket", "authserver_latency_seconds", "histogram"),
  "prom-bad-reason": (P, 'reason=~"overloaded|store_unavailable"', 'reason=~"overloaded|store_down"', "is not one of names.rs REASONS"),
  "grafana-missing-metric": (G, "authserver_bans_total", "authserver_rate_limited_total", "missing from the Grafana dashboard: authserver_bans_total"),
  "grafana-unknown-series": (G, "authserver_cold_start_total", "authserver_cold_starts_total", "is not defined in names.rs"),
  "module-new-metric": (NAMES, "\n}\n\n/// CloudWatch names of the metrics only the standalone",
      '\n    NEW_THING = ("NewThing", "authserver_new_thing_total", Counter, "Count", None,\n        "x");\n}\n\n/// CloudWatch names of the metrics only the standalone',
      "missing from the CloudWatch dashboard: NewThing"),
  "module-format-drift": (NAMES, '("AuthSuccess", "authserver_auth_success_total", Counter,',
                          '("AuthSuccess", Counter, "authserver_auth_success_total",', "shape changed"),
  # A dimension set the emitter never writes (CloudWatch would return no data; the alarm never fires).
  "alarm-dimension-set-never-emitted": (T, STOREFETCH_DIMS, "MetricName: StoreFetchError\n      Dimensions: "
      "[{Name: Service, Value: !Ref ServiceName}]", "never emitted together"),
  # The emitter stops writing a metric that an alarm and the dashboard watch (every blob loses it).
  "emitter-drops-alarmed-metric": (E, '{"Name":"Bans","Unit":"Count"},', "",
      "Bans dimensions ['Service', 'Stage'] are never emitted together", "all"),
  # /metrics stops exposing a series that alert rules and Grafana query.
  "server-drops-alerted-series": (PG, "authserver_bans_total\n", "", "'authserver_bans_total' is never exposed"),
}


def run(repo, case):
    rel, old, new, expected, *every = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(repo / "deploy", root / "deploy")
        (root / NAMES).parent.mkdir(parents=True)
        shutil.copy(repo / NAMES, root / NAMES)
        (root / E).parent.mkdir(parents=True)
        shutil.copy(repo / E, root / E)
        shutil.copy(repo / PG, root / PG)
        f = root / rel
        text = f.read_text()
        if old not in text:
            sys.exit(f"mutation for {case} no longer applies to {rel} (update the negative test)")
        f.write_text(text.replace(old, new) if every else text.replace(old, new, 1))
        r = subprocess.run([sys.executable, str(repo / "scripts/check-metric-names.py"), "--root", str(root)],
                           capture_output=True, text=True)
        out = r.stdout + r.stderr
        print(out)
        if r.returncode == 0:
            sys.exit(f"{case}: check-metric-names.py accepted the broken copy")
        if expected not in out:
            sys.exit(f"{case}: failed, but without the expected message {expected!r}")


def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(CASES))
        return
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.exit(__doc__)
    run(Path(sys.argv[1]), sys.argv[2])


if __name__ == "__main__":
    main()
