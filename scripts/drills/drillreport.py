"""The drills' reports and checks over what the drill recorded, as drillkit.py subcommands
(standard library only): count, summary, p50-spike, leak-audit (see drillkit.py's help)."""

import datetime
import json
import sys


def phase_stats(path, phase):
    with open(path) as f:
        return json.load(f).get(phase)


def count(args):
    stats = (phase_stats(args.stats, args.phase) or {"status": {}})["status"]
    if args.status == "not200":
        print(sum(v for k, v in stats.items() if k != "200"))
    elif args.status == "all":
        print(sum(stats.values()))
    else:
        print(stats.get(args.status, 0))


def summary(args):
    p = phase_stats(args.stats, args.phase)
    if not p:
        print("no requests")
        return
    mix = ", ".join(f"{k} x {v}" for k, v in sorted(p["status"].items()))
    print(f"{p['requests']} requests ({mix}); P50 {p['p50_ms']} ms, P99 {p['p99_ms']} ms, max {p['max_ms']} ms")


def p50_spike(args):
    with open(args.stats) as f:
        s = json.load(f)
    b, sp, r = s["baseline"]["p50_ms"], s["spike"]["p50_ms"], s["recovery"]["p50_ms"]
    print(f"   client P50: baseline {b} ms, spike {sp} ms, recovery {r} ms")
    sys.exit(0 if sp > args.ms and b < args.ms and r < args.ms else 1)


def iso_ms(t):
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")[:26] + "+00:00").timestamp() * 1000


def audit_events(log, before_ms):
    events = []
    with open(log) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("log_type") == "audit" and iso_ms(e["timestamp"]) < before_ms:
                events.append(e)
    return events


def leak_audit(args):
    # Act 1 only (the "rotate now" path); act 2 is checked from the traffic.
    events = audit_events(args.log, args.act2_ms)
    stats = {}
    for e in events:
        if e.get("event") == "auth_attempt" and e.get("user_hash") == args.user_hash:
            s = stats.setdefault((e["source"], e["outcome"]), {"n": 0, "first": e["timestamp"], "last": e["timestamp"]})
            s["n"] += 1
            s["last"] = e["timestamp"]
    print("   source          outcome  attempts  first                            last")
    for (src, out), s in sorted(stats.items(), key=lambda kv: -kv[1]["n"]):
        print(f"   {src:<15} {out:<8} {s['n']:>8}  {s['first']:<32} {s['last']}")
    allowed, denied = stats.get(("203.0.113.66", "allowed")), stats.get(("203.0.113.66", "denied"))
    ok = True
    if not allowed or not denied:
        print("   missing: the intruder's allowed and denied attempts")
        ok = False
    elif iso_ms(allowed["last"]) > args.deadline_ms + 1000:
        print("   the intruder was allowed after the grace period")
        ok = False
    if ("198.51.100.7", "denied") in stats:
        print("   the real client was denied")
        ok = False
    changes = [e for e in events if e.get("event") == "store_version_changed" and e.get("version") == args.token]
    print(f"   store_version_changed to the rotated version: {len(changes)} event(s)")
    sys.exit(0 if ok and len(changes) == 1 else 1)


def register(sub):
    """Adds count, summary, p50-spike and leak-audit to drillkit.py's subcommands."""
    p = sub.add_parser("count")
    p.add_argument("stats"), p.add_argument("phase"), p.add_argument("status")
    p.set_defaults(func=count)
    p = sub.add_parser("summary")
    p.add_argument("stats"), p.add_argument("phase")
    p.set_defaults(func=summary)
    p = sub.add_parser("p50-spike")
    p.add_argument("stats"), p.add_argument("--ms", type=float, default=120.0)
    p.set_defaults(func=p50_spike)
    p = sub.add_parser("leak-audit")
    p.add_argument("log"), p.add_argument("user_hash"), p.add_argument("deadline_ms", type=int)
    p.add_argument("token"), p.add_argument("act2_ms", type=int)
    p.set_defaults(func=leak_audit)
