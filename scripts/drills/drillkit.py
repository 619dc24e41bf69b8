#!/usr/bin/env python3
"""Helpers for scripts/drill (standard library only, except `promtest`, which needs PyYAML).

    drillkit.py scrape URL OUT PHASEFILE SECONDS
        Scrapes URL (Prometheus text format) every SECONDS on a fixed schedule until SIGTERM.
        Appends one JSON line per scrape to OUT: {"i", "t", "phase", "up", "samples"}; the phase
        is the current content of PHASEFILE (written by the drill), "up" is 0 when the scrape
        failed (as Prometheus' own `up` series would be).

    drillkit.py traffic legit URL STATS PHASEFILE --user U (--password P | --password-file F)
                                                 [--xff IP] [--rate R]
    drillkit.py traffic spray URL STATS PHASEFILE [--sources N] [--threads T] [--target USER]
        Sends POST /auth/validate until SIGTERM and keeps STATS (JSON, rewritten every 0.5 s and
        on exit) with the answers by phase: status counts and latency P50/P99/max in ms.
        `legit`: one client, the right password, at R requests/second, from --xff; with
        --password-file the password is read from F before every request.
        `spray`: T threads at R requests/second each, each request a fresh username (or --target
        every 5th request) with a random wrong password, from one of N addresses 203.0.113.1..N
        (X-Forwarded-For).

    drillkit.py users OUT NAME:STATUS:PHC ... [--delivery NAME=SECRET_ID ...]
        Writes a users file (DESIGN.md format) from PHC strings made by `authserver hash-password`;
        --delivery makes NAME a service account whose rotated password goes to SECRET_ID.

    drillkit.py promtest --samples S --rules R --scrape-seconds N --name NAME --out OUT
                         [--fires ALERT@PHASE] [--silent ALERT@PHASE] [--true EXPR@PHASE]
        Turns the scrapes into a `promtool test rules` file. The time model: scrape k is placed
        at k minutes (interval 1m, evaluation_interval 1m), so one promtool minute stands for
        N real seconds. Every value is the one the server reported: counters and histograms
        unchanged (rates then count real requests per N seconds; latencies are per request, not
        wall-clock, so they are not rescaled), and the one gauge that measures wall-clock time,
        authserver_store_staleness_seconds, multiplied by 60/N so that it stays on the same
        clock as the timeline. A failed scrape leaves a gap ('_') and `up` 0.
        ALERT@PHASE asserts the alert (from the rule file: labels and annotations) is firing /
        silent at the last scrape of PHASE (@PHASE+N: the N-th scrape after its first);
        EXPR@PHASE asserts the PromQL expression (use a `> bool` comparison under an
        aggregation) evaluates to 1 there.

    drillkit.py count STATS PHASE STATUS
        Answers with STATUS in PHASE of a traffic STATS file ("not200" and "all" summarise).
    drillkit.py summary STATS PHASE
        "N requests (200 x a, 429 x b); P50 x ms, P99 y ms, max z ms" for PHASE.
    drillkit.py p50-spike STATS [--ms 120]
        The client's P50 is above MS in phase spike only (baseline and recovery below it).
    drillkit.py leak-audit LOG USER_HASH DEADLINE_MS TOKEN ACT2_MS
        The credential-leak drill's audit query over the server log (events before ACT2_MS):
        the intruder's allowed attempts end by DEADLINE_MS (+1 s), it has denied ones, the real
        client none, and one store_version_changed to TOKEN.

    drillkit.py aws URL OP ...
        Secrets Manager calls to the moto server at URL (see drillaws.py; needs boto3).
"""

import argparse
import base64
import http.client
import json
import os
import random
import signal
import string
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the work tree for the imports below
import drillaws  # scripts/drills/drillaws.py (imports boto3 only when an `aws` command runs)
import drillreport  # scripts/drills/drillreport.py

STOP = threading.Event()


def _on_term(*_):
    STOP.set()


def read_phase(path):
    try:
        with open(path) as f:
            return f.read().strip() or "start"
    except OSError:
        return "start"


def write_atomic(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------- scrape
def parse_exposition(text):
    samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        try:
            samples[series] = float(value)
        except ValueError:
            continue
    return samples


def scrape(args):
    url = urllib.parse.urlsplit(args.url)
    interval = float(args.seconds)
    start = time.monotonic()
    k = 0
    with open(args.out, "a", buffering=1) as out:
        while not STOP.is_set():
            phase = read_phase(args.phasefile)
            record = {"i": k, "t": round(time.time(), 3), "phase": phase, "up": 0, "samples": {}}
            try:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=max(interval, 1.0))
                conn.request("GET", url.path or "/metrics")
                resp = conn.getresponse()
                body = resp.read().decode()
                conn.close()
                if resp.status == 200:
                    record["up"] = 1
                    record["samples"] = parse_exposition(body)
            except OSError:
                pass
            out.write(json.dumps(record) + "\n")
            k += 1
            # Fixed schedule: scrape k at start + k * interval, whatever the previous one cost.
            STOP.wait(max(0.0, start + k * interval - time.monotonic()))


# ------------------------------------------------------------------------------------ traffic
class Stats:
    def __init__(self, path, phasefile):
        self.path, self.phasefile = path, phasefile
        self.lock = threading.Lock()
        self.phases = {}

    def record(self, status, ms):
        phase = read_phase(self.phasefile)
        with self.lock:
            p = self.phases.setdefault(phase, {"status": {}, "lat": []})
            p["status"][status] = p["status"].get(status, 0) + 1
            p["lat"].append(ms)

    def dump(self):
        with self.lock:
            out = {}
            for phase, p in self.phases.items():
                lat = sorted(p["lat"])
                pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None
                out[phase] = {"status": dict(p["status"]), "requests": len(lat),
                              "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(lat[-1], 2) if lat else None}
        write_atomic(self.path, json.dumps(out, sort_keys=True))


class Client:
    """One keep-alive connection, reopened after errors."""

    def __init__(self, url):
        self.url = urllib.parse.urlsplit(url)
        self.conn = None

    def post(self, user, password, xff=None):
        headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
                   "Content-Length": "0"}
        if xff:
            headers["X-Forwarded-For"] = xff
        t0 = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=10)
            self.conn.request("POST", "/auth/validate", headers=headers)
            resp = self.conn.getresponse()
            resp.read()
            status = str(resp.status)
            if resp.getheader("connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException):
            self.close()
            status = "conn_error"
        return status, (time.monotonic() - t0) * 1000

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def traffic(args):
    stats = Stats(args.stats, args.phasefile)
    threads = []

    def password():
        # --password-file: read before every request, so the drill can switch the client to a
        # new password (as a client re-reading its delivery secret would) by replacing the file.
        if args.password_file:
            with open(args.password_file) as f:
                return f.read().rstrip("\n")
        return args.password

    def legit():
        client, period = Client(args.url), 1.0 / args.rate
        nxt = time.monotonic()
        while not STOP.is_set():
            status, ms = client.post(args.user, password(), args.xff)
            stats.record(status, ms)
            if status == "conn_error":
                STOP.wait(0.2)  # a down server refuses at once: do not spin
            nxt += period
            STOP.wait(max(0.0, nxt - time.monotonic()))

    def spray(tid):
        client, rng, n = Client(args.url), random.Random(tid), 0
        period, nxt = 1.0 / args.rate, time.monotonic()
        while not STOP.is_set():
            n += 1
            source = f"203.0.113.{1 + (n * args.threads + tid) % args.sources}"
            user = args.target if args.target and n % 5 == 0 else f"spray{tid}-{n}"
            password = "".join(rng.choice(string.ascii_letters) for _ in range(12))
            status, ms = client.post(user, password, source)
            stats.record(status, ms)
            if status == "conn_error":
                STOP.wait(0.2)
            nxt = max(nxt + period, time.monotonic() - 1.0)  # a slow answer does not cause a burst
            STOP.wait(max(0.0, nxt - time.monotonic()))

    if args.mode == "legit":
        threads.append(threading.Thread(target=legit, daemon=True))
    else:
        threads += [threading.Thread(target=spray, args=(t,), daemon=True) for t in range(args.threads)]
    for t in threads:
        t.start()
    while not STOP.is_set():
        stats.dump()
        STOP.wait(0.5)
    for t in threads:
        t.join(timeout=11)
    stats.dump()


# -------------------------------------------------------------------------------------- users
def users(args):
    doc = {}
    for spec in args.entries:
        name, status, phc = spec.split(":", 2)
        doc[name] = {"passwordHash": phc, "status": status, "roles": ["drill"]}
    for spec in args.delivery:
        name, _, secret = spec.partition("=")
        doc[name]["deliverySecretId"] = secret
    write_atomic(args.out, json.dumps(doc, indent=2) + "\n")


# ----------------------------------------------------------------------------------- promtest
TIME_GAUGES = ("authserver_store_staleness_seconds",)


def fmt(v):
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Inf" if v > 0 else "-Inf"
    return repr(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)


def promtest(args):
    import yaml

    scrapes = [json.loads(line) for line in open(args.samples) if line.strip()]
    if not scrapes:
        sys.exit("promtest: no scrapes recorded")
    scale = 60.0 / float(args.scrape_seconds)
    rules = {}
    for group in yaml.safe_load(open(args.rules))["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rules[rule["alert"]] = rule
    first, last = {}, {}
    for s in scrapes:
        first.setdefault(s["phase"], s["i"])
        last[s["phase"]] = s["i"]
    instance = urllib.parse.urlsplit(args.url).netloc if args.url else "127.0.0.1"

    names = sorted({k for s in scrapes for k in s["samples"]})
    series = []
    for name in names:
        factor = scale if name.split("{")[0] in TIME_GAUGES else 1.0
        vals = [fmt(s["samples"][name] * factor) if name in s["samples"] else "_" for s in scrapes]
        series.append({"series": name, "values": " ".join(vals)})
    series.append({"series": f'up{{job="authserver", instance="{instance}"}}',
                   "values": " ".join(str(s["up"]) for s in scrapes)})

    def at(spec):
        what, _, where = spec.rpartition("@")
        phase, plus, n = where.partition("+")
        if phase not in last:
            sys.exit(f"promtest: phase {phase!r} has no scrape (phases: {', '.join(last)})")
        if plus:
            k = first[phase] + int(n)
            if k > last[phase]:
                sys.exit(f"promtest: phase {phase} has no scrape {n} (it has {last[phase] - first[phase] + 1})")
            return what, f"{phase} scrape {n}", f"{k}m"
        return what, f"end of {phase}", f"{last[phase]}m"

    alert_tests, expr_tests, plan = [], [], []
    for kind, specs in (("fires", args.fires), ("silent", args.silent)):
        for spec in specs:
            alert, phase, t = at(spec)
            if alert not in rules:
                sys.exit(f"promtest: no alert {alert} in {args.rules}")
            exp = []
            if kind == "fires":
                labels = dict(rules[alert].get("labels", {}))
                if rules[alert]["expr"].strip().startswith("up{"):
                    labels.update({"job": "authserver", "instance": instance})
                exp = [{"exp_labels": labels, "exp_annotations": dict(rules[alert].get("annotations", {}))}]
            alert_tests.append({"eval_time": t, "alertname": alert, "exp_alerts": exp})
            plan.append(f"{alert} {'FIRING' if kind == 'fires' else 'silent'} at {phase} ({t})")
    for spec in args.true:
        expr, phase, t = at(spec)
        expr_tests.append({"expr": expr, "eval_time": t, "exp_samples": [{"labels": "{}", "value": 1}]})
        plan.append(f"{expr} == 1 at {phase} ({t})")

    phases, order = {}, []
    for s in scrapes:
        if s["phase"] not in phases:
            order.append(s["phase"])
            phases[s["phase"]] = [s["i"], s["i"]]
        phases[s["phase"]][1] = s["i"]
    test = {
        "rule_files": [os.path.abspath(args.rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "name": f"drill {args.name}: alert rules over the metrics the server produced",
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": alert_tests,
            **({"promql_expr_test": expr_tests} if expr_tests else {}),
        }],
    }
    header = (
        f"# Generated by scripts/drill {args.name} from {len(scrapes)} real scrapes of /metrics, one every "
        f"{args.scrape_seconds} s.\n"
        f"# Time model: scrape k is at k minutes (1 promtool minute = {args.scrape_seconds} real seconds);\n"
        "# counters and histograms are the server's values unchanged; authserver_store_staleness_seconds is\n"
        f"# multiplied by {scale:g} to stay on the same clock. Phases (scrape indexes = minutes):\n"
        + "".join(f"#   {p}: {a}m..{b}m\n" for p, (a, b) in ((p, phases[p]) for p in order))
    )
    with open(args.out, "w") as f:
        f.write(header + yaml.safe_dump(test, sort_keys=False, width=1000))
    print("timeline: " + ", ".join(f"{p} {a}m-{b}m" for p, (a, b) in ((p, phases[p]) for p in order)))
    for line in plan:
        print(f"assert: {line}")


# --------------------------------------------------------------------------------------- main
def main():
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("scrape")
    p.add_argument("url"), p.add_argument("out"), p.add_argument("phasefile"), p.add_argument("seconds")
    p.set_defaults(func=scrape)
    p = sub.add_parser("traffic")
    p.add_argument("mode", choices=["legit", "spray"])
    p.add_argument("url"), p.add_argument("stats"), p.add_argument("phasefile")
    p.add_argument("--user"), p.add_argument("--password"), p.add_argument("--xff")
    p.add_argument("--password-file")
    p.add_argument("--rate", type=float, default=5.0)
    p.add_argument("--sources", type=int, default=50)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--target")
    p.set_defaults(func=traffic)
    p = sub.add_parser("users")
    p.add_argument("out"), p.add_argument("entries", nargs="+")
    p.add_argument("--delivery", action="append", default=[], help="NAME=SECRET_ID: a service account")
    p.set_defaults(func=users)
    p = sub.add_parser("promtest")
    p.add_argument("--samples", required=True), p.add_argument("--rules", required=True)
    p.add_argument("--scrape-seconds", required=True), p.add_argument("--name", required=True)
    p.add_argument("--out", required=True), p.add_argument("--url")
    p.add_argument("--fires", action="append", default=[])
    p.add_argument("--silent", action="append", default=[])
    p.add_argument("--true", action="append", default=[])
    p.set_defaults(func=promtest)
    drillreport.register(sub)
    drillaws.register(sub)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
