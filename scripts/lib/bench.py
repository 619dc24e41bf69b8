#!/usr/bin/env python3
"""The Python parts of the benchmarks (standard library only).

    bench.py http-peers WORKDIR AUTH_LINES BASE_LINES|-           scripts/bench-http's table
    bench.py telemetry WORKDIR ROUNDS base|-                       ONLY=telemetry scripts/bench-http
    bench.py spray-legit PORT DURATION RATE XFF|-                 scripts/bench-spray's client
    bench.py spray-report RESULTS BUDGET_MIB DURATION RATE SOURCES USERS   its table
"""
import argparse
import http.client
import json
import random
import re
import sys
import time


def wrk_result(path):
    """req/s, P50 and P99 in ms, and the STATUS counts of one wrk run (scripts/bench/basic.lua)."""
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def ms(label):
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text)
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v
    status = dict(re.findall(r"(\w+)=(\d+)", re.search(r"STATUS (.*)", text).group(1)))
    cpu = dict(re.findall(r"(\w+)=(\d+)", re.search(r"CPU (.*)", text).group(1)))
    answered = sum(int(v) for k, v in status.items() if k != "errors")
    # Server CPU per answered request, in microseconds (0 for the peers: not measured).
    per_request = lambda ticks: int(ticks) / int(cpu["hz"]) / max(answered, 1) * 1e6
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "status": status,
            "cpu_us": per_request(cpu["ticks"]), "user_us": per_request(cpu.get("user", 0)),
            "sys_us": per_request(cpu.get("sys", 0))}


def http_peers(argv):
    """The side-by-side table of scripts/bench-http, from the wrk outputs in its work directory."""
    d, lines, base_lines = argv[1], int(argv[2]), argv[3]
    r = lambda name: wrk_result(f"{d}/{name}.txt")
    static = r("nginx-static")
    on = [r("auth-valid-1"), r("auth-valid-2")]
    off = [r("quiet-valid-1"), r("quiet-valid-2")]
    mean = lambda runs, k: sum(x[k] for x in runs) / len(runs)
    keys = ("rps", "p50", "p99", "cpu_us")
    rows = [("valid", "nginx static (ceiling)", static),
            ("valid", "authserver, all on", {k: mean(on, k) for k in keys} | {"status": on[0]["status"]}),
            ("valid", "authserver, all off", {k: mean(off, k) for k in keys} | {"status": off[0]["status"]})]
    if base_lines != "-":
        for label, name in (("baseline binary, all on", "base-valid"), ("baseline binary, all off", "base-quiet-valid")):
            runs = [r(f"{name}-1"), r(f"{name}-2")]
            rows.append(("valid", label, {k: mean(runs, k) for k in keys} | {"status": runs[0]["status"]}))
    fwd = [r("forward-valid-1"), r("forward-valid-2")]
    ruled = [r("rules-valid-1"), r("rules-valid-2")]
    rows.append(("valid", "/auth/forward, no rules", {k: mean(fwd, k) for k in keys} | {"status": fwd[0]["status"]}))
    rows.append(("valid", "/auth/forward, 100 rules", {k: mean(ruled, k) for k in keys} | {"status": ruled[0]["status"]}))
    for workload in ("valid", "wrong", "spray"):
        for peer, label in (("nginx-auth", "nginx auth_basic"), ("caddy", "Caddy basicauth")):
            rows.append((workload, label, r(f"{peer}-{workload}")))
        if workload != "valid":
            rows.append((workload, "authserver, all on", r(f"auth-{workload}")))
    fmt = "{:<9}{:<26}{:>9}{:>8}{:>9}{:>9}{:>7}{:>9}  {}"
    print("\n" + fmt.format("workload", "server", "req/s", "x nginx", "P50 ms", "P99 ms", "P99 x", "CPU us", "answers"))
    for workload, label, x in rows:
        answers = " ".join(f"{k}={v}" for k, v in x["status"].items() if v != "0")
        cpu = f"{x['cpu_us']:.1f}" if x["cpu_us"] else "-"
        print(fmt.format(workload, label, f"{x['rps']:.0f}", f"{x['rps'] / static['rps']:.2f}",
                         f"{x['p50']:.3f}", f"{x['p99']:.3f}", f"{x['p99'] / static['p99']:.2f}", cpu, answers))
    hit, quiet = rows[1][2], rows[2][2]
    overhead = 100 * (1 - hit["rps"] / quiet["rps"])
    runs = lambda xs: ", ".join(f"{x['rps']:.0f}" for x in xs)
    cpu_runs = lambda xs: ", ".join(f"{x['cpu_us']:.1f}" for x in xs)
    answered = sum(int(v) for x in on for k, v in x["status"].items() if k != "errors")
    print(f"\ncache hit / nginx static throughput: {hit['rps'] / static['rps']:.2f} (target >= 0.8)")
    print(f"cache hit P99 / nginx static P99:    {hit['p99'] / static['p99']:.2f} (target <= 1)")
    print(f"telemetry overhead, all on vs all off: {overhead:.1f} % of req/s (req/s on {runs(on)}, "
          f"off {runs(off)}, alternating); {100 * (hit['cpu_us'] / quiet['cpu_us'] - 1):.1f} % "
          f"more server CPU per request ({hit['cpu_us']:.1f} vs {quiet['cpu_us']:.1f} us; runs on "
          f"{cpu_runs(on)}, off {cpu_runs(off)}) (target < 5 %)")
    f, w = {k: mean(fwd, k) for k in keys}, {k: mean(ruled, k) for k in keys}
    print(f"access rules, /auth/forward cache hits (all on): 100 rules {w['cpu_us']:.1f} us of server "
          f"CPU per request against {f['cpu_us']:.1f} us without ({w['cpu_us'] - f['cpu_us']:+.1f} us, "
          f"{100 * (w['cpu_us'] / f['cpu_us'] - 1):+.1f} %); req/s {runs(ruled)} against {runs(fwd)}")
    # +1: the request that filled the cache.
    print(f"log lines of the all-on server: {lines} for {answered + 1} auth requests "
          "(target: 1 per auth request)")
    if base_lines != "-":
        base_on, base_off = rows[3][2], rows[4][2]
        base_answered = sum(int(v) for n in (1, 2) for k, v in r(f"base-valid-{n}")["status"].items() if k != "errors")
        print(f"baseline binary: {base_on['rps'] / static['rps']:.2f} x nginx, overhead "
              f"{100 * (1 - base_on['rps'] / base_off['rps']):.1f} % of req/s, "
              f"{100 * (base_on['cpu_us'] / base_off['cpu_us'] - 1):.1f} % more CPU per request "
              f"({base_on['cpu_us']:.1f} vs {base_off['cpu_us']:.1f} us), "
              f"{base_lines} log lines for {base_answered + 1} requests")


def bootstrap(values, statistic, draws=5000):
    """A 90 % interval of `statistic` by resampling `values` (fixed seed: reports repeat)."""
    rng = random.Random(17)
    stats = sorted(statistic(rng.choices(values, k=len(values))) for _ in range(draws))
    return stats[draws // 20], stats[draws - draws // 20 - 1]


def telemetry(argv):
    """All on against all off, pair by pair (ONLY=telemetry scripts/bench-http): CPU per request
    is the figure (req/s moves with the neighbours' load); the median of the pairs' overheads
    is robust to one disturbed run."""
    d, rounds = argv[1], int(argv[2])
    servers = [("", "this binary")] + ([("base", "baseline binary")] if argv[3] != "-" else [])
    median = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1:len(xs) // 2 + 1]) / 2
    for prefix, label in servers:
        on_name, off_name = (f"{prefix}-valid", f"{prefix}-quiet-valid") if prefix else ("auth-valid", "quiet-valid")
        pairs = [(wrk_result(f"{d}/{on_name}-{i}.txt"), wrk_result(f"{d}/{off_name}-{i}.txt"))
                 for i in range(1, rounds + 1)]
        print(f"\n{label}: CPU us per request, all on / all off (req/s), overhead")
        for i, (on, off) in enumerate(pairs, 1):
            print(f"  round {i}: {on['cpu_us']:.2f} / {off['cpu_us']:.2f} us "
                  f"({on['rps']:.0f} / {off['rps']:.0f} req/s)  {100 * (on['cpu_us'] / off['cpu_us'] - 1):+.1f} %")
        cpu = [100 * (on["cpu_us"] / off["cpu_us"] - 1) for on, off in pairs]
        rps = [100 * (1 - on["rps"] / off["rps"]) for on, off in pairs]
        lo, hi = bootstrap(cpu, median)
        print(f"  telemetry overhead, median of {rounds} pairs: {median(cpu):.1f} % CPU per request "
              f"(90 % bootstrap interval {lo:.1f} .. {hi:.1f}; pairs {min(cpu):.1f} .. {max(cpu):.1f}), "
              f"{median(rps):.1f} % of req/s (target < 5 %)")
        split = lambda k: median([on[k] - off[k] for on, off in pairs])
        print(f"  of which, median per request: user {split('user_us'):+.2f} us, kernel {split('sys_us'):+.2f} us "
              f"(all off: user {median([off['user_us'] for _, off in pairs]):.2f}, "
              f"kernel {median([off['sys_us'] for _, off in pairs]):.2f} us)")
    if len(servers) == 2:
        # Both binaries all on, same rounds: with BASELINE_BIN = this binary, an A/A test of the
        # harness (how far apart two identical servers measure).
        ab = [100 * (wrk_result(f"{d}/auth-valid-{i}.txt")["cpu_us"] / wrk_result(f"{d}/base-valid-{i}.txt")["cpu_us"] - 1)
              for i in range(1, rounds + 1)]
        print(f"\nthis binary against the baseline, both all on: median {median(ab):+.1f} % CPU per request "
              f"(range {min(ab):+.1f} .. {max(ab):+.1f})")


def spray_legit(argv):
    """The legitimate client: alice's valid credentials at a steady rate on one keep-alive
    connection; latency from send to the end of the answer; anything but 200 is a failure."""
    port, duration, rate, xff = int(argv[1]), float(argv[2]), float(argv[3]), argv[4]
    headers = {"Authorization": "Basic YWxpY2U6d29uZGVybGFuZA=="}  # alice:wonderland
    if xff != "-":
        headers["X-Forwarded-For"] = xff
    conn = None
    lat, statuses, errors, late = [], {}, 0, 0
    start = time.perf_counter()
    for i in range(int(duration * rate)):
        due = start + i / rate
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        elif now - due > 1 / rate:
            late += 1
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            t0 = time.perf_counter()
            conn.request("POST", "/auth/validate", headers=headers)
            res = conn.getresponse()
            res.read()
            lat.append((time.perf_counter() - t0) * 1000)
            statuses[res.status] = statuses.get(res.status, 0) + 1
            errors += res.status != 200
        except (OSError, http.client.HTTPException):
            errors += 1
            conn = None
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, round(p * (len(lat) - 1)))] if lat else float("nan")
    print(json.dumps({"requests": int(duration * rate), "errors": errors, "statuses": statuses,
                      "p50": q(0.5), "p99": q(0.99), "max": lat[-1] if lat else float("nan"),
                      "late_sends": late}))


def spray_report(argv):
    """The table of the spray scenarios from the results file scripts/bench-spray writes."""
    rows = [line.rstrip("\n").split("|") for line in open(argv[1])]
    budget, duration, rate, nsrc, nusr = argv[2:7]
    print(f"\nspray: {duration} s, fresh wrong password per request, {nusr} usernames, "
          f"{nsrc} claimed sources; legitimate: alice at {rate} req/s; memory budget {budget} MiB")
    head = ("scenario", "regulation", "legit n", "P50 ms", "P99 ms", "max ms", "fail",
            "spray req", "401", "429", "503", "other", "peak RSS MiB")
    fmt = "{:<15}{:>11}{:>9}{:>8}{:>8}{:>8}{:>6}{:>11}{:>8}{:>8}{:>8}{:>7}{:>14}"
    print(fmt.format(*head))
    ok = None
    for name, reg, spray, legit, hwm in rows:
        s = dict(re.findall(r"(\w+)=(\d+)", spray))
        l = json.loads(legit)
        label = {"on": "on, XFF", "off": "off, XFF", "shared-address": "on, shared IP"}[name]
        print(fmt.format(label, reg, l["requests"], f"{l['p50']:.2f}", f"{l['p99']:.2f}",
                         f"{l['max']:.1f}", l["errors"], s["requests"], s["s401"], s["s429"],
                         s["s503"], s["other"], f"{int(hwm) / 1024:.0f}"))
        if name == "on":
            ok = l["p99"] < 10 and l["errors"] == 0 and int(hwm) / 1024 <= int(budget)
    print("\nlate legitimate sends (client behind its schedule) per scenario: "
          + ", ".join(f"{r[0]}={json.loads(r[3])['late_sends']}" for r in rows))
    print("target (regulation on, XFF): legitimate P99 < 10 ms, 0 failures, peak RSS <= budget: "
          + {None: "not run", True: "met", False: "NOT met"}[ok])


COMMANDS = {
    "http-peers": (http_peers, ["workdir", "auth_lines", "baseline_lines"]),
    "telemetry": (telemetry, ["workdir", "rounds", "baseline"]),
    "spray-legit": (spray_legit, ["port", "duration", "rate", "xff"]),
    "spray-report": (spray_report, ["results", "budget_mib", "duration", "rate", "sources", "users"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (_, params) in COMMANDS.items():
        p = sub.add_parser(name)
        for param in params:
            p.add_argument(param)
    args = ap.parse_args()
    func, params = COMMANDS[args.cmd]
    # The reports index their arguments as the command line has them: argv[1] is the first.
    func([args.cmd] + [getattr(args, param) for param in params])


if __name__ == "__main__":
    main()
