#!/usr/bin/env python3
"""scripts/bench-lambda-cpu's measurements (standard library only): one memory size.

    lambda_cpu.py CGROUP_PROCS BINARY USERS_FILE MEMORY_MB MISSES

Starts BINARY inside the cgroup (the child joins it before exec, so start-up is throttled too)
and prints one table row. Two processes: one with the verified cache on (start-up, the first
answer, cache hits) and one with it off (every validation a verification).
"""
import base64
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time

GOOD = "Basic " + base64.b64encode(b"alice:wonderland").decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(procs, binary, users, env):
    port = free_port()
    def join():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--users", users],
                            env=dict(os.environ, AUTHSERVER_ADMIN_LISTEN="", LOG_LEVEL="warn",
                                     AUTHSERVER_AUDIT_STDOUT="false", **env),
                            stdout=subprocess.DEVNULL, preexec_fn=join)
    while time.monotonic() - t0 < 60:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port, (time.monotonic() - t0) * 1000, t0
        except OSError:
            time.sleep(0.002)
    proc.kill()
    sys.exit("bench-lambda-cpu: the server did not start within 60 s")


def validate(port):
    """Milliseconds for one POST /auth/validate as alice (asserts 200)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t = time.monotonic()
    c.request("POST", "/auth/validate", headers={"Authorization": GOOD})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"bench-lambda-cpu: validation answered {r.status}")
    return (time.monotonic() - t) * 1000


def main():
    procs, binary, users, mb, misses = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    proc, port, started, t0 = start(procs, binary, users, {})
    try:
        validate(port)
        first = (time.monotonic() - t0) * 1000
        hits = statistics.median(validate(port) for _ in range(50))
    finally:
        proc.terminate()
        proc.wait()
    proc, port, _, _ = start(procs, binary, users, {"AUTHSERVER_CACHE_CAPACITY": "0"})
    try:
        miss = statistics.median(validate(port) for _ in range(misses))
    finally:
        proc.terminate()
        proc.wait()
    print(f"{mb:<8} {mb / 1769:<7.3f} {started:>12.1f} {first:>18.1f} {miss:>16.1f} {hits:>14.2f}")


if __name__ == "__main__":
    main()
