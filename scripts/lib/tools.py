#!/usr/bin/env python3
"""Small helpers the shell scripts share (standard library only; `pip-missing` needs pip).

    tools.py free-port
        Prints a free TCP port on 127.0.0.1 (the kernel's choice).

    tools.py wait-http URL [--timeout SECONDS] [--pid PID]
        Waits until URL answers HTTP (any status counts: the server is up), at most SECONDS
        (default 60). Exit status 1 on time-out, or as soon as process PID has exited.

    tools.py json-get PATH [FILE]
        Prints the value at the dotted PATH (e.g. store.version) of the JSON document in FILE
        (default: stdin); null prints an empty line. Exit status 1 when the document is not
        JSON or PATH is missing.

    tools.py pip-missing SPEC...
        Prints, one a line, the requirement specs (`name`, `name[extra]`, `name==1.2`,
        `name<70`) the running interpreter's environment does not satisfy. Run it with the
        venv's python (the version matching uses pip's vendored `packaging`).

    tools.py zip-entry-size ZIP NAME
        Prints the uncompressed size in bytes of NAME inside ZIP.

    tools.py junit-count REPORT
        Prints "PASSED FAILED": the test cases of a JUnit XML report without and with a
        failure/error element; "0 1" when the report is missing or unreadable.

    tools.py har-statuses NAME HAR
        Prints "NAME: N requests, statuses 200xA 401xB ..." from a HAR file's responses.
"""

import argparse
import collections
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zipfile


def free_port(_args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_http(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(args.url, timeout=1).close()
            return 0
        except urllib.error.HTTPError:
            return 0  # an HTTP error status is an answer: the server is up
        except (OSError, ValueError):
            pass
        if args.pid and not pid_alive(args.pid):
            return 1
        time.sleep(0.2)
    return 1


def json_get(args):
    try:
        value = json.load(open(args.file) if args.file else sys.stdin)
        for key in args.path.split("."):
            value = value[key]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        print(f"json-get {args.path}: {e!r}", file=sys.stderr)
        return 1
    print("" if value is None else value if isinstance(value, str) else json.dumps(value))
    return 0


def pip_missing(args):
    from importlib.metadata import PackageNotFoundError, version

    from pip._vendor.packaging.requirements import Requirement

    for spec in args.specs:
        req = Requirement(spec)
        try:
            have = version(req.name)
        except PackageNotFoundError:
            print(spec)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            print(spec)
    return 0


def zip_entry_size(args):
    print(zipfile.ZipFile(args.zip).getinfo(args.name).file_size)
    return 0


def junit_count(args):
    try:
        cases = list(ET.parse(args.report).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        print(0, 1)
        return 0
    bad = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    print(len(cases) - bad, bad)
    return 0


def har_statuses(args):
    entries = json.load(open(args.har))["log"]["entries"]
    mix = collections.Counter(e["response"]["status"] for e in entries)
    print(f"{args.name}: {len(entries)} requests, statuses " + " ".join(f"{k}x{v}" for k, v in sorted(mix.items())))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port").set_defaults(func=free_port)
    p = sub.add_parser("wait-http")
    p.add_argument("url")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--pid", type=int)
    p.set_defaults(func=wait_http)
    p = sub.add_parser("json-get")
    p.add_argument("path")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=json_get)
    p = sub.add_parser("pip-missing")
    p.add_argument("specs", nargs="+")
    p.set_defaults(func=pip_missing)
    p = sub.add_parser("zip-entry-size")
    p.add_argument("zip")
    p.add_argument("name")
    p.set_defaults(func=zip_entry_size)
    p = sub.add_parser("junit-count")
    p.add_argument("report")
    p.set_defaults(func=junit_count)
    p = sub.add_parser("har-statuses")
    p.add_argument("name")
    p.add_argument("har")
    p.set_defaults(func=har_statuses)
    args = ap.parse_args()
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
