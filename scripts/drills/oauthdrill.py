#!/usr/bin/env python3
"""The clients and resource servers of the oauth-key-rotation drill (scripts/drills/oauth-key-rotation.sh).

    oauthdrill.py run BASE STATS PHASEFILE --client ID --secret-file F --audience AUD
                      [--token-rate R] [--validate-rate R] [--forge-dir DIR] [--tokens-out FILE]
        Until SIGTERM, against the server at BASE (its discovery document names the issuer and
        `jwks_uri`):
        - the token client obtains an access token (client_secret_basic) R times a second and
          puts it in a pool, as a fleet of clients that each keep their token until it expires;
        - four validators check, R times a second each, the newest token of the pool and the
          oldest one still live (so a retired key's last tokens are checked up to their `exp`):
            pyjwt       PyJWT's PyJWKClient, its JWKS cached for the max-age the JWKS answer
                        says and refetched on an unknown kid (the library's own behaviour);
            jwcrypto    jwcrypto over its own JWKS cache: refetched when the Cache-Control
                        max-age has run out or on an unknown kid;
            cache-only  the same, but never refetched on an unknown kid: only the max-age (how a
                        gateway with a fixed JWKS cache behaves; the publish lead protects it);
            validate    POST /auth/validate with `Authorization: Bearer`, 200 = accepted;
        - the watcher reads JWKS (no cache) 4 times a second and records when each kid appears
          in it and leaves it;
        - once a KID.pem is in --forge-dir (a compromised private key the drill copied), the
          intruder mints tokens with it (any claims it likes, the compromised kid) and presents
          them to /auth/validate 5 times a second.
        STATS (JSON, rewritten every 0.5 s and on exit): per validator, phase and signing kid,
        accepted and refused counts; the first and last accepted (and refused) time per validator
        and kid;
        JWKS fetch counts; every token issued (time, kid, exp, phase; not the token); the JWKS
        events; the intruder's answers by phase. --tokens-out keeps every token (0600) for the
        drill's "no token in the server log" check.

    oauthdrill.py show STATS WHAT ...
        Figures for the drill's checks (scripts/drills/oauthreport.py): `refused VALIDATOR PHASE...`,
        `accepted VALIDATOR KID`, `first-token KID`, `appeared KID`, `left KID`, `last-exp KID`,
        `last-accepted VALIDATOR KID`, `last-refused VALIDATOR KID`, `intruder PHASE STATUS`, `summary`.

    oauthdrill.py secrets-in LOG FILE...
        Exits 1 when a line of any FILE (tokens, PEM bodies) occurs in LOG; prints what it checked.
"""

import argparse
import base64
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the work tree for the import below
import oauthreport  # noqa: E402  scripts/drills/oauthreport.py: `show` and `secrets-in`

STOP = threading.Event()
ALGS = ["ES256", "RS256"]


def read_phase(path):
    try:
        with open(path) as f:
            return f.read().strip() or "start"
    except OSError:
        return "start"


def get_json(url, headers=None, data=None, timeout=5):
    """(status, headers, json body or None)."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return r.status, r.headers, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        try:
            return e.code, e.headers, json.loads(body)
        except ValueError:
            return e.code, e.headers, None
    except (OSError, ValueError):
        return 0, {}, None


def max_age(headers):
    m = re.search(r"max-age=(\d+)", (headers or {}).get("Cache-Control", "") or "")
    return int(m.group(1)) if m else 0


def kid_of(token):
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("kid", "?")


class Stats:
    def __init__(self, path, phasefile):
        self.path, self.phasefile = path, phasefile
        self.lock = threading.Lock()
        self.results = {}  # validator -> phase -> kid -> {"ok": n, "refused": n, "errors": {..}}
        self.accepted_span = {}  # validator -> kid -> [first, last]
        self.refused_span = {}  # validator -> kid -> [first, last]
        self.fetches = {}  # validator -> JWKS fetches
        self.tokens = []  # {"t", "kid", "exp", "phase"} for every token issued
        self.token_errors = {}  # phase -> status -> n
        self.events = []  # {"t", "kid", "event": "appeared" | "left"}
        self.intruder = {}  # phase -> status -> n
        self.max_age = None

    def phase(self):
        return read_phase(self.phasefile)

    def result(self, validator, kid, ok, why=""):
        phase, now = self.phase(), time.time()
        with self.lock:
            r = self.results.setdefault(validator, {}).setdefault(phase, {}).setdefault(
                kid, {"ok": 0, "refused": 0, "why": {}})
            if ok:
                r["ok"] += 1
                span = self.accepted_span.setdefault(validator, {}).setdefault(kid, [now, now])
                span[1] = now
            else:
                r["refused"] += 1
                r["why"][why] = r["why"].get(why, 0) + 1
                span = self.refused_span.setdefault(validator, {}).setdefault(kid, [now, now])
                span[1] = now

    def fetched(self, validator):
        with self.lock:
            self.fetches[validator] = self.fetches.get(validator, 0) + 1

    def dump(self):
        with self.lock:
            doc = {"results": self.results, "accepted_span": self.accepted_span, "fetches": self.fetches,
                   "refused_span": self.refused_span,
                   "tokens": self.tokens, "token_errors": self.token_errors, "events": self.events,
                   "intruder": self.intruder, "max_age": self.max_age}
            text = json.dumps(doc, sort_keys=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)


class Pool:
    """Tokens obtained and not yet expired: (exp, token, kid)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, exp, token, kid):
        with self.lock:
            self.items.append((exp, token, kid))

    def pick(self):
        """The newest token and the oldest one that is still live for a second or more."""
        now = time.time()
        with self.lock:
            self.items = [i for i in self.items if i[0] > now + 1]
            if not self.items:
                return []
            return [self.items[-1]] + ([self.items[0]] if len(self.items) > 1 else [])


# --------------------------------------------------------------------------------- validators
class JwcryptoValidator:
    """A resource server's JWKS cache: the Cache-Control max-age of the answer, and (unless
    cache_only) one refetch when a token names a kid the cached set lacks."""

    def __init__(self, name, jwks_uri, issuer, audience, stats, cache_only):
        from jwcrypto import jwk
        self.jwk = jwk
        self.name, self.uri, self.iss, self.aud, self.stats = name, jwks_uri, issuer, audience, stats
        self.cache_only = cache_only
        self.keys, self.until = None, 0.0

    def refresh(self):
        status, headers, body = get_json(self.uri)
        if status != 200 or not isinstance(body, dict):
            raise OSError(f"JWKS answered {status}")
        self.stats.fetched(self.name)
        self.keys = self.jwk.JWKSet.from_json(json.dumps(body))
        self.until = time.monotonic() + max_age(headers)

    def check(self, token):
        from jwcrypto import jwt
        kid = kid_of(token)
        if self.keys is None or time.monotonic() >= self.until:
            self.refresh()
        if self.keys.get_key(kid) is None and not self.cache_only:
            self.refresh()
        if self.keys.get_key(kid) is None:
            return False, "unknown kid"
        try:
            t = jwt.JWT(jwt=token, key=self.keys, algs=ALGS, expected_type="JWS",
                        check_claims={"iss": self.iss, "aud": self.aud, "exp": None})
            head = json.loads(t.header)
            if head.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
                return False, "typ"
            return True, ""
        except Exception as e:  # noqa: BLE001 - every refusal is a refusal; its class is the reason
            return False, type(e).__name__


class PyJwtValidator:
    def __init__(self, jwks_uri, issuer, audience, stats, lifespan):
        import jwt
        self.jwt, self.iss, self.aud, self.stats = jwt, issuer, audience, stats
        outer = self

        class Counting(jwt.PyJWKClient):
            def fetch_data(self):
                outer.stats.fetched("pyjwt")
                return super().fetch_data()

        self.client = Counting(jwks_uri, cache_jwk_set=True, lifespan=max(lifespan, 1))

    def check(self, token):
        try:
            key = self.client.get_signing_key_from_jwt(token)
            self.jwt.decode(token, key.key, algorithms=ALGS, audience=self.aud, issuer=self.iss,
                            options={"require": ["exp", "iat", "iss", "aud", "jti"]})
            if self.jwt.get_unverified_header(token).get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
                return False, "typ"
            return True, ""
        except Exception as e:  # noqa: BLE001
            return False, type(e).__name__


class ValidateEndpoint:
    def __init__(self, base):
        self.url = base + "/auth/validate"

    def check(self, token):
        status, _, _ = get_json(self.url, headers={"Authorization": "Bearer " + token}, data=b"")
        return status == 200, str(status)


# ---------------------------------------------------------------------------------------- run
def run(args):
    stats = Stats(args.stats, args.phasefile)
    status, _, meta = get_json(args.base + "/.well-known/openid-configuration")
    if status != 200 or not meta:
        sys.exit(f"discovery answered {status}")
    issuer, jwks_uri = meta["issuer"], meta["jwks_uri"]
    _, headers, _ = get_json(jwks_uri)
    stats.max_age = max_age(headers)
    with open(args.secret_file) as f:
        secret = f.read().rstrip("\n")
    basic = "Basic " + base64.b64encode(
        f"{urllib.parse.quote(args.client, safe='')}:{urllib.parse.quote(secret, safe='')}".encode()).decode()
    pool = Pool()
    tokens_out = open(os.open(args.tokens_out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") \
        if args.tokens_out else None

    def every(rate, body):
        period, nxt = 1.0 / rate, time.monotonic()
        while not STOP.is_set():
            body()
            nxt = max(nxt + period, time.monotonic() - 1.0)
            STOP.wait(max(0.0, nxt - time.monotonic()))

    def obtain():
        status, _, body = get_json(args.base + "/oauth/token", headers={
            "Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"},
            data=b"grant_type=client_credentials")
        phase = stats.phase()
        if status != 200 or not body:
            with stats.lock:
                e = stats.token_errors.setdefault(phase, {})
                e[str(status)] = e.get(str(status), 0) + 1
            return
        token = body["access_token"]
        kid = kid_of(token)
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=" * (-len(token.split(".")[1]) % 4)))
        pool.add(claims["exp"], token, kid)
        with stats.lock:
            stats.tokens.append({"t": round(time.time(), 3), "kid": kid, "exp": claims["exp"], "phase": phase,
                                 "iat": claims["iat"]})
        if tokens_out:
            tokens_out.write(token + "\n")
            tokens_out.flush()

    validators = {
        "pyjwt": PyJwtValidator(jwks_uri, issuer, args.audience, stats, stats.max_age),
        "jwcrypto": JwcryptoValidator("jwcrypto", jwks_uri, issuer, args.audience, stats, cache_only=False),
        "cache-only": JwcryptoValidator("cache-only", jwks_uri, issuer, args.audience, stats, cache_only=True),
        "validate": ValidateEndpoint(args.base),
    }

    def validating(name):
        v = validators[name]

        def body():
            for _, token, kid in pool.pick():
                try:
                    ok, why = v.check(token)
                except OSError as e:
                    ok, why = False, f"jwks: {e}"
                stats.result(name, kid, ok, why)
        return body

    published = set()

    def watch():
        status, _, body = get_json(jwks_uri)
        if status != 200 or not isinstance(body, dict):
            return
        now, kids = round(time.time(), 3), {k.get("kid") for k in body.get("keys", [])}
        with stats.lock:
            for kid in sorted(kids - published):
                stats.events.append({"t": now, "kid": kid, "event": "appeared"})
            for kid in sorted(published - kids):
                stats.events.append({"t": now, "kid": kid, "event": "left"})
        published.clear()
        published.update(kids)

    forge = {"key": None, "kid": None}

    def intrude():
        if forge["key"] is None:
            pems = sorted(os.listdir(args.forge_dir)) if args.forge_dir and os.path.isdir(args.forge_dir) else []
            pems = [p for p in pems if p.endswith(".pem")]
            if not pems:
                return
            with open(os.path.join(args.forge_dir, pems[0])) as f:
                forge["key"] = f.read()
            forge["kid"] = pems[0].removesuffix(".pem")
        import jwt
        now = int(time.time())
        alg = "RS256" if forge["kid"].lower().startswith("rs") else "ES256"
        token = jwt.encode({"iss": issuer, "sub": args.client, "client_id": args.client, "aud": args.audience,
                            "scope": "reports:read", "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
                           forge["key"], algorithm=alg, headers={"kid": forge["kid"], "typ": "at+jwt"})
        status, _, _ = get_json(args.base + "/auth/validate", headers={"Authorization": "Bearer " + token}, data=b"")
        phase = stats.phase()
        with stats.lock:
            p = stats.intruder.setdefault(phase, {})
            p[str(status)] = p.get(str(status), 0) + 1
        if tokens_out:
            tokens_out.write(token + "\n")
            tokens_out.flush()

    watch()
    threads = [threading.Thread(target=every, args=(args.token_rate, obtain), daemon=True),
               threading.Thread(target=every, args=(4, watch), daemon=True),
               threading.Thread(target=every, args=(5, intrude), daemon=True)]
    threads += [threading.Thread(target=every, args=(args.validate_rate, validating(n)), daemon=True)
                for n in validators]
    for t in threads:
        t.start()
    while not STOP.is_set():
        stats.dump()
        STOP.wait(0.5)
    for t in threads:
        t.join(timeout=10)
    stats.dump()


def main():
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("base"), p.add_argument("stats"), p.add_argument("phasefile")
    p.add_argument("--client", required=True), p.add_argument("--secret-file", required=True)
    p.add_argument("--audience", required=True)
    p.add_argument("--token-rate", type=float, default=4.0)
    p.add_argument("--validate-rate", type=float, default=8.0)
    p.add_argument("--forge-dir"), p.add_argument("--tokens-out")
    p.set_defaults(func=run)
    oauthreport.register(sub)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
