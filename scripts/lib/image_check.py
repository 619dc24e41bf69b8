"""Checks for scripts/test-image.sh: the image's configuration and a running instance.

  image_check.py inspect INSPECT_JSON VERSION   # `buildah inspect --type image` output
  image_check.py probe BASE_URL [ADMIN_URL]     # /health, /ready, /auth/validate (example users)

Each prints one line per check ("ok ..." / "FAIL ..."), then a summary; exit 1 on any failure.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

OCI = "org.opencontainers.image."


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, ok, what, got=None):
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}" + ("" if got is None else f": got {got!r}"))

    def done(self, name):
        print(f"{name}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def inspect(args):
    data = json.load(open(args.file))
    docker = data.get("Docker", {}).get("config", {})
    labels = docker.get("Labels") or {}
    c = Checks()
    c.check(bool(docker), "docker-format config (the format that carries HEALTHCHECK)")
    c.check(docker.get("User") == "65532:65532", "user 65532:65532 (non-root)", docker.get("User"))
    c.check(docker.get("Entrypoint") == ["/authserver"], "entrypoint [/authserver]", docker.get("Entrypoint"))
    c.check(docker.get("Cmd") == ["serve"], "cmd [serve]", docker.get("Cmd"))
    ports = sorted((docker.get("ExposedPorts") or {}).keys())
    c.check(ports == ["8080/tcp", "9090/tcp"], "exposed 8080/tcp 9090/tcp", ports)
    env = docker.get("Env") or []
    c.check("AUTHSERVER_CONFIG=/etc/authserver/config.toml" in env, "AUTHSERVER_CONFIG set", env)
    health = (docker.get("Healthcheck") or {}).get("Test")
    c.check(health == ["CMD", "/authserver", "healthcheck"], "healthcheck runs authserver healthcheck", health)
    c.check(labels.get(OCI + "version") == args.version, "label version", labels.get(OCI + "version"))
    c.check(labels.get(OCI + "licenses") == "Apache-2.0", "label licenses", labels.get(OCI + "licenses"))
    for key in ("source", "revision", "created"):
        c.check(bool(labels.get(OCI + key)), f"label {key}", labels.get(OCI + key))
    oci_config = json.loads(data.get("Config") or "{}")
    c.check(oci_config.get("config", {}).get("User") == "65532:65532", "OCI config user as well")
    layers = json.loads(data.get("Manifest") or "{}").get("layers") or []
    size = sum(layer.get("size", 0) for layer in layers)
    c.check(len(layers) == 1, "one layer (binary, CA bundle, config, users)", len(layers))
    print(f"image: {len(layers)} layer(s), {size} bytes uncompressed ({size // 1024} KiB)")
    return c.done("image inspect")


def request(url, auth=None, method="GET"):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def probe(args):
    c = Checks()
    base = args.base.rstrip("/")
    status, _, _ = request(base + "/health")
    c.check(status == 200, "GET /health 200", status)
    status, _, body = request(base + "/ready")
    c.check(status == 200 and json.loads(body).get("ready") is True, "GET /ready 200 ready", (status, body[:80]))
    validate = base + "/auth/validate"
    status, _, body = request(validate, "alice:wonderland", "POST")
    ok = status == 200 and json.loads(body).get("roles") == ["admin", "reader"]
    c.check(ok, "alice (example user) allowed with her roles", (status, body[:120]))
    status, headers, _ = request(validate, "alice:nope", "POST")
    challenge = headers.get("WWW-Authenticate", "")
    c.check(status == 401 and challenge.startswith("Basic "), "wrong password: 401 with a Basic challenge", status)
    status, _, _ = request(validate, "bob:builder", "POST")
    c.check(status in (401, 403), "bob (DISABLED) refused", status)
    if args.admin:
        status, _, body = request(args.admin.rstrip("/") + "/metrics")
        c.check(status == 200 and b"authserver_" in body, "admin GET /metrics 200", status)
    return c.done("image probe")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inspect")
    p.add_argument("file")
    p.add_argument("version")
    p.set_defaults(func=inspect)
    p = sub.add_parser("probe")
    p.add_argument("base")
    p.add_argument("admin", nargs="?")
    p.set_defaults(func=probe)
    args = ap.parse_args()
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
