"""The oauth-key-rotation drill's figures, read from the STATS file `oauthdrill.py run` wrote, and
its "no secret in the log" check; registered as subcommands of oauthdrill.py (see its docstring)."""

import json
import os
import sys


def show(args):
    try:
        doc = json.load(open(args.stats))
    except FileNotFoundError:  # not written yet: nothing recorded
        doc = {"results": {}, "accepted_span": {}, "refused_span": {}, "fetches": {}, "tokens": [], "token_errors": {}, "events": [],
               "intruder": {}}
    what, rest = args.what[0], args.what[1:]
    res = doc["results"]
    if what == "refused":  # refused VALIDATOR PHASE... [--kid KID]: refusals in those phases
        v, phases = rest[0], [p for p in rest[1:] if not p.startswith("kid=")]
        kids = [p[4:] for p in rest[1:] if p.startswith("kid=")]
        print(sum(r["refused"] for p in phases for k, r in res.get(v, {}).get(p, {}).items() if not kids or k in kids))
    elif what == "checked":  # checked VALIDATOR PHASE... [kid=KID]: accepted + refused
        v, phases = rest[0], [p for p in rest[1:] if not p.startswith("kid=")]
        kids = [p[4:] for p in rest[1:] if p.startswith("kid=")]
        print(sum(r["ok"] + r["refused"] for p in phases for k, r in res.get(v, {}).get(p, {}).items()
                  if not kids or k in kids))
    elif what == "accepted":  # accepted VALIDATOR PHASE... kid=KID
        v, phases = rest[0], [p for p in rest[1:] if not p.startswith("kid=")]
        kids = [p[4:] for p in rest[1:] if p.startswith("kid=")]
        print(sum(r["ok"] for p in phases for k, r in res.get(v, {}).get(p, {}).items() if not kids or k in kids))
    elif what == "first-token":
        print(min((t["t"] for t in doc["tokens"] if t["kid"] == rest[0]), default=""))
    elif what == "last-token":
        print(max((t["t"] for t in doc["tokens"] if t["kid"] == rest[0]), default=""))
    elif what == "last-exp":
        print(max((t["exp"] for t in doc["tokens"] if t["kid"] == rest[0]), default=""))
    elif what in ("appeared", "left"):
        print(min((e["t"] for e in doc["events"] if e["kid"] == rest[0] and e["event"] == what), default=""))
    elif what == "last-accepted":
        print(doc["accepted_span"].get(rest[0], {}).get(rest[1], ["", ""])[1])
    elif what == "last-refused":
        print(doc["refused_span"].get(rest[0], {}).get(rest[1], ["", ""])[1])
    elif what == "intruder":
        print(sum(doc["intruder"].get(p, {}).get(rest[-1], 0) if rest[-1] != "all" else
                  sum(doc["intruder"].get(p, {}).values()) for p in rest[:-1]))
    elif what == "tokens":
        print(sum(1 for t in doc["tokens"] if t["kid"] == rest[0]))
    elif what == "token-errors":
        print(sum(n for p in doc["token_errors"].values() for n in p.values()))
    elif what == "summary":  # one line per validator: checks and refusals by phase, JWKS fetches
        for v in sorted(res):
            parts = []
            for p, kids in res[v].items():
                ok = sum(r["ok"] for r in kids.values())
                bad = sum(r["refused"] for r in kids.values())
                why = {}
                for r in kids.values():
                    for w, n in r["why"].items():
                        why[w] = why.get(w, 0) + n
                parts.append(f"{p} {ok}/{ok + bad}" + (f" (refused: {why})" if bad else ""))
            print(f"{v}: accepted/checked " + "; ".join(parts) + f"; JWKS fetches {doc['fetches'].get(v, '-')}")
    else:
        sys.exit(f"show: unknown {what}")


def secrets_in(args):
    log = open(args.log, errors="replace").read()
    n = 0
    for path in args.files:
        for line in open(path):
            line = line.strip()
            if len(line) < 16 or line.startswith("-----"):
                continue
            n += 1
            # A token's signature (or a PEM line) anywhere in the log, whole or its last 43 chars.
            if line in log or line[-43:] in log:
                print(f"found a line of {os.path.basename(path)} in {os.path.basename(args.log)}")
                sys.exit(1)
    print(n)



def register(sub):
    p = sub.add_parser("show")
    p.add_argument("stats"), p.add_argument("what", nargs="+")
    p.set_defaults(func=show)
    p = sub.add_parser("secrets-in")
    p.add_argument("log"), p.add_argument("files", nargs="+")
    p.set_defaults(func=secrets_in)
