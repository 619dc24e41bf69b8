#!/usr/bin/env python3
"""scripts/bench-users' parts (standard library only): a large users file and the server's
time to ready, memory, reload and `users add` on it.

    users_bench.py generate COUNT OUT          writes COUNT users to OUT (pretty JSON, as `users add` writes)
    users_bench.py measure BIN FILE            starts BIN on FILE and prints the figures (ready, RSS,
                                               `users add`, the reload it causes, `users list`)

The generated hashes are well-formed Argon2id PHC strings at m=19456,t=2,p=1 (the cheapest the
default policy accepts) with a random 16-byte salt and 32-byte tag: they are not the hash of any
password (hashing a million passwords would take hours and measures nothing here). Size and
parsing cost are those of real hashes. Roles cycle through four sets (none, reader,
reader+writer, admin) and every tenth user has a passwordChangedAt, as a real store would.
"""
import base64
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import time

ROLES = [[], ["reader"], ["reader", "writer"], ["admin"]]


def b64(n):
    return base64.b64encode(os.urandom(n)).decode().rstrip("=")


def generate(count, out):
    with open(out, "w") as f:
        f.write("{\n")
        for i in range(count):
            rec = {"passwordHash": f"$argon2id$v=19$m=19456,t=2,p=1${b64(16)}${b64(32)}",
                   "status": "ACTIVE", "roles": ROLES[i % len(ROLES)]}
            if i % 10 == 0:
                rec["passwordChangedAt"] = "2026-11-01T08:00:00Z"
            body = json.dumps(rec, indent=2).replace("\n", "\n  ")
            f.write(f'  "user-{i:07d}": {body}{"," if i + 1 < count else ""}\n')
        f.write("}\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process so far (the machine is shared: wall clock alone
    says more about the neighbours than about the server)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready(port):
    """The admin /ready answer (store version, users) or None while not ready."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/ready")
        r = c.getresponse()
        body = r.read()
        return json.loads(body)["store"] if r.status == 200 else None
    except (OSError, ValueError):
        return None


def wait_for(pid, check, limit):
    """Polls check() every 10 ms; returns (value, seconds, peak RSS KiB seen meanwhile)."""
    start, peak = time.monotonic(), 0
    while time.monotonic() - start < limit:
        peak = max(peak, status_kib(pid, "VmRSS"))
        value = check()
        if value:
            return value, time.monotonic() - start, peak
        time.sleep(0.01)
    sys.exit(f"bench-users: not done within {limit} s")


def count_users(path):
    """Entries in the file, counted in chunks: this process must stay small, because a child's
    peak RSS (wait4's ru_maxrss) starts from the RSS its parent had when it forked."""
    key, count, tail = b'"passwordHash"', 0, b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            data = tail + chunk
            count += data.count(key)
            tail = data[-(len(key) - 1):]
    return count


def run_child(argv, env, stdin):
    """Runs one CLI command to its end: (wall s, CPU s, peak RSS KiB, stderr, exit code), the
    CPU and peak RSS that child's own (wait4), stdout discarded."""
    import tempfile
    with tempfile.TemporaryFile() as err:
        t = time.monotonic()
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=env)
        if stdin:
            child.stdin.write(stdin)
        child.stdin.close()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        took = time.monotonic() - t
        err.seek(0)
        return (took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, err.read().decode(errors="replace"),
                child.returncode)


def measure(binary, users):
    count = count_users(users)
    size = os.path.getsize(users)
    port, admin = free_port(), free_port()
    env = dict(os.environ, AUTHSERVER_ADMIN_LISTEN=f"127.0.0.1:{admin}", LOG_LEVEL="warn",
               AUTHSERVER_STORE_MAX_FILE_BYTES=str(4 * size), AUTHSERVER_STORE_POLL_INTERVAL_MS="100",
               AUTHSERVER_STORE_RELOAD_DEADLINE_MS="60000", AUTHSERVER_AUDIT_STDOUT="false")
    server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--users", users],
                              env=env, stdout=subprocess.DEVNULL)
    try:
        store, to_ready, _ = wait_for(server.pid, lambda: ready(admin), 120)
        time.sleep(1)
        steady, start_peak = status_kib(server.pid, "VmRSS"), status_kib(server.pid, "VmHWM")
        print(f"users file: {count} users, {size / 1e6:.0f} MB ({size / count:.0f} B/user)")
        print(f"ready after start: {to_ready:.2f} s wall, {cpu_seconds(server.pid):.2f} s CPU "
              f"(users in service: {store['users']})")
        print(f"RSS when ready: {steady / 1024:.0f} MiB ({steady * 1024 / count:.0f} B/user); "
              f"start-up peak (VmHWM) {start_peak / 1024:.0f} MiB")
        took, add_cpu, add_rss, err, code = run_child(
            [binary, "users", "add", users, "bench-added-user", "--m-cost", "19456", "--t-cost", "2"],
            env, b"bench-Password-1\n")
        cpu_before = cpu_seconds(server.pid)
        if code != 0:
            print(f"users add: failed after {took:.2f} s: {err.strip()}")
            return
        print(f"users add on {count} users: {took:.2f} s wall, {add_cpu:.2f} s CPU (one Argon2id hash at m=19456,t=2 included); "
              f"peak RSS {add_rss / 1024:.0f} MiB")
        before = store["version"]
        new, reload_s, peak = wait_for(
            server.pid, lambda: (s := ready(admin)) and s["version"] != before and s, 120)
        after = status_kib(server.pid, "VmRSS")
        print(f"reload CPU: {cpu_seconds(server.pid) - cpu_before:.2f} s (includes 100 ms polls)")
        print(f"reload after the edit: {reload_s:.2f} s from the edit's end (poll interval 0.1 s); "
              f"peak RSS sampled {peak / 1024:.0f} MiB = {peak / steady:.2f}x steady; "
              f"RSS after {after / 1024:.0f} MiB; users {new['users']}")
        took, cpu, rss, err, code = run_child([binary, "users", "list", users], env, None)
        print(f"users list on {count + 1} users: {took:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss / 1024:.0f} MiB"
              + ("" if code == 0 else f" (failed: {err.strip()})"))
    finally:
        server.terminate()
        server.wait()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "generate":
        generate(int(args[0]), args[1])
    elif cmd == "measure":
        measure(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
