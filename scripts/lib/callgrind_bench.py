#!/usr/bin/env python3
"""The Python parts of scripts/bench-telemetry (standard library only).

    callgrind_bench.py drive PORT COUNT [PATH]      COUNT cache-hit requests on one keep-alive
                                                    connection; exits 1 unless all are 200
    callgrind_bench.py report COUNT NAME=DUMP ...   instructions and allocations per request of
                                                    each callgrind dump, the overhead of each
                                                    `X-on` against its `X-off`, and the
                                                    functions that make the difference

A dump is one `callgrind_control --dump` taken after exactly COUNT requests (instrumentation
switched on and the counters zeroed just before them), written with `--compress-strings=no
--compress-pos=no` so it can be read line by line here. Instructions (event `Ir`) are the
process's total over every thread, the background ones (log flush, timers) included: they are
part of what telemetry costs. Allocations are the calls into the C allocator (`malloc`,
`calloc`, `realloc`, `posix_memalign`, `aligned_alloc`, `memalign`) from any function.
"""
import http.client
import sys
from collections import defaultdict

ALLOCATORS = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"}


def drive(argv):
    """alice's valid credentials COUNT times on one connection (a verified-cache hit each)."""
    port, count = int(argv[0]), int(argv[1])
    path = argv[2] if len(argv) > 2 else "/auth/validate"
    headers = {"Authorization": "Basic YWxpY2U6d29uZGVybGFuZA==", "Host": "127.0.0.1"}  # alice:wonderland
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    bad = 0
    for _ in range(count):
        conn.request("POST", path, headers=headers)
        res = conn.getresponse()
        res.read()
        bad += res.status != 200
    conn.close()
    if bad:
        print(f"drive: {bad} of {count} answers were not 200", file=sys.stderr)
        sys.exit(1)


def parse(path):
    """(total Ir, self Ir by function, allocator calls by calling function, allocator calls)."""
    self_ir = defaultdict(int)
    allocs_by = defaultdict(int)
    total = None
    fn = cfn = None
    call_cost_next = False
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if call_cost_next:
                    # The inclusive cost of the call just described: not this function's own.
                    call_cost_next = False
                    continue
                parts = line.split()
                if len(parts) > 1 and fn is not None:
                    self_ir[fn] += int(parts[1])
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("cfn="):
                cfn = line[4:].strip()
            elif line.startswith("calls="):
                call_cost_next = True
                if cfn in ALLOCATORS:
                    allocs_by[fn] += int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if total is None:
        total = sum(self_ir.values())
    return total, self_ir, allocs_by, sum(allocs_by.values())


def short(name, width=90):
    return name if len(name) <= width else name[: width - 3] + "..."


def report(argv):
    count = int(argv[0])
    runs = {}
    for arg in argv[1:]:
        name, path = arg.split("=", 1)
        runs[name] = parse(path)
    print(f"\ncallgrind, {count} cache-hit POST /auth/validate per server, one keep-alive connection")
    fmt = "{:<22}{:>16}{:>14}{:>14}"
    print(fmt.format("server", "instructions", "instr/req", "allocs/req"))
    for name, (total, _, _, allocs) in runs.items():
        print(fmt.format(name, f"{total:,}", f"{total / count:,.0f}", f"{allocs / count:.1f}"))
    for on_name in [n for n in runs if n.endswith("-on")]:
        off_name = on_name[:-3] + "-off"
        if off_name not in runs:
            continue
        on, off = runs[on_name], runs[off_name]
        print(f"\n{on_name} vs {off_name}: {100 * (on[0] / off[0] - 1):+.2f} % instructions per "
              f"request ({on[0] / count:,.0f} vs {off[0] / count:,.0f}), "
              f"{(on[3] - off[3]) / count:+.1f} allocations per request "
              f"({on[3] / count:.1f} vs {off[3] / count:.1f})")
        diff = {k: on[1].get(k, 0) - off[1].get(k, 0) for k in set(on[1]) | set(off[1])}
        top = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:15]
        print("  functions making the difference (own instructions per request, on - off):")
        for k, v in top:
            print(f"  {v / count:>+10.1f}  {short(k)}")
        adiff = {k: on[2].get(k, 0) - off[2].get(k, 0) for k in set(on[2]) | set(off[2])}
        atop = [kv for kv in sorted(adiff.items(), key=lambda kv: -abs(kv[1])) if kv[1]][:8]
        if atop:
            print("  allocator calls per request, by caller (on - off):")
            for k, v in atop:
                print(f"  {v / count:>+10.2f}  {short(k)}")
    for name, (_, _, allocs_by, allocs) in runs.items():
        if not name.endswith("-on") or not allocs:
            continue
        print(f"\n{name}: allocator calls per request by caller")
        for k, v in sorted(allocs_by.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {v / count:>8.2f}  {short(k)}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"drive": drive, "report": report}[cmd](args)
