#!/usr/bin/env python3
"""Checks deploy/kubernetes: every overlay renders, its core objects validate, its CRDs carry what
their controllers need, and the pod keeps the contract docs/deployment.md ("Kubernetes") states.

    check-kubernetes.py --kubectl BIN --validate BIN [--k8s VERSION] [--binary AUTHSERVER]
    check-kubernetes.py ... --negative CASE | --list-negatives   # a planted mistake must be caught

- `kubectl kustomize` renders the base and each overlay.
- `kubernetes-validate --strict` checks every core object (v1, apps/v1, policy/v1,
  networking.k8s.io/v1) against the schemas of Kubernetes VERSION (default 1.31.0). CRD kinds have
  no schema there: the fields their upstream docs require are checked here (Traefik Middleware
  forwardAuth: address, authResponseHeaders; Envoy Gateway SecurityPolicy: targetRefs,
  extAuth.http.backendRefs + path + headersToBackend; Gateway API Gateway/HTTPRoute). A kind in
  neither list fails: nothing ships unchecked.
- The contract: non-root 65532, read-only root, no privilege escalation, capabilities dropped,
  seccomp RuntimeDefault, no service links, no token; /health liveness, /ready readiness, a
  startup probe; the users Secret mounted as a directory (never subPath: the kubelet's `..data`
  swap never reaches a subPath); selectors match the pod; DNS-only egress; an example app routed to
  admits only the proxy's namespace; the Argon2id budget fits
  the memory limit; the ports of config.toml are the container's; `authserver config check`
  accepts config.toml when --binary is given.
Last line: "INFO: ..."; exit status 1 on any finding.
"""
import argparse
import copy
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
CORE_API = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"}
# server.forward_user_header, forward_roles_header, oauth.forward_scopes_header: a header the
# proxy does not replace is whatever the client sent (issue 14: Remote-Scopes).
IDENTITY = {"Remote-User", "Remote-Groups", "Remote-Scopes"}
# docs/performance.md: 140 MiB peak RSS under a spray with one 64 MiB verification in flight.
OVERHEAD_MIB = 140 - 64
PATH_FORWARD = "/auth/forward"


def targets(kube: pathlib.Path):
    return [kube / "base"] + sorted(p for p in (kube / "overlays").iterdir() if p.is_dir())


def render(kubectl: str, target: pathlib.Path):
    out = subprocess.run([kubectl, "kustomize", str(target)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{target}: kubectl kustomize failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def validate_core(validate: str, version: str, docs, where: str, problems: list):
    core = [d for d in docs if d.get("apiVersion") in CORE_API]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(core, f)
        f.flush()
        out = subprocess.run([validate, "-k", version, "--strict", "--quiet", f.name],
                             capture_output=True, text=True)
    if out.returncode != 0:
        problems.append(f"{where}: kubernetes-validate {version}: {(out.stdout + out.stderr).strip()}")
    return len(core)


def dig(obj, *keys):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def check_middleware(d, objs, say):
    fa = dig(d, "spec", "forwardAuth") or {}
    known = {"address", "trustForwardHeader", "authResponseHeaders", "authResponseHeadersRegex",
             "authRequestHeaders", "tls", "addAuthCookiesToResponse", "headerField", "forwardBody",
             "maxBodySize", "preserveLocationHeader", "preserveRequestMethod"}
    for k in set(fa) - known:
        say(f"forwardAuth has an unknown field {k!r}")
    check_url(fa.get("address"), "forwardAuth.address", objs, say)
    if not IDENTITY <= set(fa.get("authResponseHeaders") or []):
        say(f"forwardAuth.authResponseHeaders must list {sorted(IDENTITY)}")
    if fa.get("trustForwardHeader"):
        say("forwardAuth.trustForwardHeader lets clients set X-Forwarded-* (and is deprecated)")


def check_securitypolicy(d, objs, say):
    refs = dig(d, "spec", "targetRefs") or []
    if not refs or any(not {"group", "kind", "name"} <= set(r) for r in refs):
        say("spec.targetRefs needs entries with group, kind and name")
    for r in refs:
        if r.get("kind") == "HTTPRoute" and ("HTTPRoute", r.get("name")) not in objs:
            say(f"targetRefs names HTTPRoute {r.get('name')!r}, which the overlay does not define")
    http = dig(d, "spec", "extAuth", "http") or {}
    backends = http.get("backendRefs") or ([http["backendRef"]] if "backendRef" in http else [])
    if not backends:
        say("extAuth.http needs backendRefs")
    for b in backends:
        port = dig(objs.get(("Service", b.get("name"))), "spec", "ports") or []
        if b.get("port") not in [p.get("port") for p in port if p.get("name") == "http"]:
            say(f"extAuth backend {b} is not the http port of a Service of the overlay")
    if http.get("path") != PATH_FORWARD:
        say(f"extAuth.http.path must be {PATH_FORWARD}")
    if not IDENTITY <= set(http.get("headersToBackend") or []):
        say(f"extAuth.http.headersToBackend must list {sorted(IDENTITY)}")


def check_gateway(d, objs, say):
    if not dig(d, "spec", "gatewayClassName"):
        say("spec.gatewayClassName missing")
    listeners = dig(d, "spec", "listeners") or []
    if not listeners or any(not {"name", "protocol", "port"} <= set(li) for li in listeners):
        say("spec.listeners need name, protocol and port")


def check_httproute(d, objs, say):
    if not dig(d, "spec", "parentRefs") or not dig(d, "spec", "rules"):
        say("spec.parentRefs and spec.rules are required")


CRDS = {
    ("traefik.io/v1alpha1", "Middleware"): check_middleware,
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"): check_securitypolicy,
    ("gateway.networking.k8s.io/v1", "Gateway"): check_gateway,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): check_httproute,
}


def check_url(url, what, objs, say):
    m = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)(/\S*)", url or "")
    if not m:
        say(f"{what} {url!r} is not http://SERVICE.NAMESPACE.svc.cluster.local:PORT/PATH")
        return
    svc, ns, port, path = m.groups()
    service = objs.get(("Service", svc))
    if service is None or dig(service, "metadata", "namespace") != ns:
        say(f"{what} names Service {svc}.{ns}, which the overlay does not define")
    elif int(port) not in [p["port"] for p in service["spec"]["ports"] if p.get("name") == "http"]:
        say(f"{what}: port {port} is not the Service's http port")
    if path != PATH_FORWARD:
        say(f"{what} must call {PATH_FORWARD}, not {path}")


def check_ingress(d, objs, say):
    notes = dig(d, "metadata", "annotations") or {}
    if (dig(d, "spec", "ingressClassName") or "") == "nginx":
        check_url(notes.get("nginx.ingress.kubernetes.io/auth-url"), "auth-url", objs, say)
        headers = notes.get("nginx.ingress.kubernetes.io/auth-response-headers", "")
        if not IDENTITY <= {h.strip() for h in headers.split(",")}:
            say(f"auth-response-headers must list {sorted(IDENTITY)}")


def check_pod(dep, say):
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    expect = {
        "enableServiceLinks": (pod.get("enableServiceLinks"), False),
        "automountServiceAccountToken": (pod.get("automountServiceAccountToken"), False),
        "runAsNonRoot": (psc.get("runAsNonRoot"), True),
        "runAsUser": (psc.get("runAsUser"), 65532),
        "seccompProfile": (dig(psc, "seccompProfile", "type"), "RuntimeDefault"),
    }
    (c,) = pod["containers"]
    sc = c.get("securityContext") or {}
    expect |= {
        "readOnlyRootFilesystem": (sc.get("readOnlyRootFilesystem"), True),
        "allowPrivilegeEscalation": (sc.get("allowPrivilegeEscalation"), False),
        "capabilities.drop": (dig(sc, "capabilities", "drop"), ["ALL"]),
        "livenessProbe": (dig(c, "livenessProbe", "httpGet", "path"), "/health"),
        "readinessProbe": (dig(c, "readinessProbe", "httpGet", "path"), "/ready"),
        "startupProbe": (dig(c, "startupProbe", "httpGet", "path"), "/health"),
    }
    for name, (have, want) in expect.items():
        if have != want:
            say(f"Deployment: {name} is {have!r}, must be {want!r}")
    for m in c.get("volumeMounts") or []:
        if "subPath" in m or "subPathExpr" in m:
            say(f"volumeMount {m['name']} uses subPath: the kubelet's ..data swap never reaches it")
        if not m.get("readOnly"):
            say(f"volumeMount {m['name']} must be readOnly")
    return pod, c


def mib(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Mi|Gi)", str(quantity))
    if not m:
        raise ValueError(f"memory {quantity!r}: use Mi or Gi")
    return int(m[1]) * (1024 if m[2] == "Gi" else 1)


def check_config(pod, c, config, say):
    """config.toml against the pod: ports, the users mount, the memory arithmetic."""
    ports = {p["name"]: p["containerPort"] for p in c.get("ports") or []}
    for key, port in (("server", "http"), ("admin", "admin")):
        listen = dig(config, key, "listen") or ""
        if not listen.startswith("0.0.0.0:") or int(listen.rsplit(":", 1)[1]) != ports.get(port):
            say(f"{key}.listen {listen!r} must be 0.0.0.0:<the {port} containerPort {ports.get(port)}>")
    users = pathlib.PurePosixPath(dig(config, "store", "file") or "")
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    mount = next((m for m in c.get("volumeMounts") or []
                  if users.parent == pathlib.PurePosixPath(m["mountPath"])), None)
    secret = dig(vols.get(mount["name"]) if mount else None, "secret")
    items = [i["path"] for i in (secret or {}).get("items") or []]
    if secret is None or (items and users.name not in items):
        say(f"store.file {users} is not a file of a Secret volume's mount")
    h = config.get("hash") or {}
    concurrent, budget, max_m = h.get("max_concurrent", 0), h.get("memory_budget_mib"), h.get("max_m_kib")
    if not concurrent or budget is None or max_m is None:
        say("config.toml must fix hash.max_concurrent, memory_budget_mib and max_m_kib (CPU count in a pod is the node's)")
        return
    if concurrent * -(-max_m // 1024) > budget:
        say(f"hash: {concurrent} x {max_m} KiB exceeds memory_budget_mib {budget}")
    limit = mib(dig(c, "resources", "limits", "memory"))
    if budget + OVERHEAD_MIB > limit:
        say(f"memory limit {limit} MiB < budget {budget} + measured overhead {OVERHEAD_MIB} MiB")
    if mib(dig(c, "resources", "requests", "memory")) != limit:
        say("memory request must equal the limit")


def check_selectors(docs, labels, say):
    for d in docs:
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] != "authserver":
            continue  # the example app's (check_app_policy)
        sel = {"Service": dig(d, "spec", "selector"),
               "PodDisruptionBudget": dig(d, "spec", "selector", "matchLabels"),
               "NetworkPolicy": dig(d, "spec", "podSelector", "matchLabels"),
               "Deployment": dig(d, "spec", "selector", "matchLabels")}.get(d["kind"], labels)
        if not sel or not set(sel.items()) <= set(labels.items()):
            say(f"{d['kind']} selector {sel} does not select the pod {labels}")
        if d["kind"] == "NetworkPolicy":
            for rule in d["spec"].get("egress") or []:
                ports = {p.get("port") for p in rule.get("ports") or []}
                peers = [dig(p, "podSelector", "matchLabels") for p in rule.get("to") or []]
                if ports != {53} or peers != [{"k8s-app": "kube-dns"}]:
                    say(f"NetworkPolicy egress beyond kube-dns:53: {rule}")


def proxy_namespace(policy):
    """The namespace a NetworkPolicy's first ingress rule admits."""
    peers = dig(policy, "spec", "ingress") or [{}]
    return dig((peers[0].get("from") or [{}])[0], "namespaceSelector", "matchLabels",
               "kubernetes.io/metadata.name")


def check_app_policy(docs, objs, say):
    """An overlay that routes to the example app also keeps everyone but the proxy off it."""
    backends = [b.get("name") for d in docs if d["kind"] == "HTTPRoute"
                for r in d["spec"].get("rules") or [] for b in r.get("backendRefs") or []]
    backends += [dig(p, "backend", "service", "name") for d in docs if d["kind"] == "Ingress"
                 for r in d["spec"].get("rules") or [] for p in dig(r, "http", "paths") or []]
    if "app" not in backends:
        return
    proxy = proxy_namespace(objs.get(("NetworkPolicy", "authserver")))
    app = [d for d in docs if d["kind"] == "NetworkPolicy"
           and dig(d, "spec", "podSelector", "matchLabels") == {"app.kubernetes.io/name": "app"}]
    if len(app) != 1 or proxy_namespace(app[0]) != proxy:
        say(f"the example app needs a NetworkPolicy admitting only the proxy's namespace {proxy!r}")


def check_target(args, target: pathlib.Path):
    problems = []
    docs = render(args.kubectl, target)
    where = target.relative_to(target.parent.parent) if target.name != "base" else target.name
    objs = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    core = validate_core(args.validate, args.k8s, docs, str(where), problems)
    for d in docs:
        def say(msg, d=d):
            problems.append(f"{where}: {d['kind']}/{d['metadata']['name']}: {msg}")
        api = d.get("apiVersion")
        if api in CORE_API:
            if d["kind"] == "Ingress":
                check_ingress(d, objs, say)
        elif (api, d["kind"]) in CRDS:
            CRDS[(api, d["kind"])](d, objs, say)
        else:
            say(f"{api} {d['kind']}: no schema and no check here (add one to CRDS)")
    deps = [d for d in docs if d["kind"] == "Deployment"]
    maps = [d for d in docs if d["kind"] == "ConfigMap"]
    if len(deps) != 1 or len(maps) != 1:
        return problems + [f"{where}: expected one Deployment and one ConfigMap"], len(docs), core
    say = lambda msg: problems.append(f"{where}: {msg}")  # noqa: E731
    pod, c = check_pod(deps[0], say)
    config_text = maps[0]["data"]["config.toml"]
    check_config(pod, c, tomllib.loads(config_text), say)
    check_selectors(docs, deps[0]["spec"]["template"]["metadata"]["labels"], say)
    check_app_policy(docs, objs, say)
    if args.binary:
        config_check(args.binary, config_text, say)
    return problems, len(docs), core


def config_check(binary, text, say):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "config.toml"
        path.write_text(text)
        env = {"PATH": "/usr/bin:/bin", "AUTHSERVER_STORE_FILE": str(ROOT / "examples" / "users.json")}
        out = subprocess.run([binary, "config", "check", "--config", str(path)],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            say(f"authserver config check refuses config.toml: {out.stderr.strip()}")


# Each case plants one mistake in a copy of deploy/kubernetes: (file, text, replacement).
NEGATIVES = {
    "users-secret-subpath": ("base/deployment.yaml", "              mountPath: /var/run/authserver/users\n",
                             "              mountPath: /var/run/authserver/users/users.json\n"
                             "              subPath: users.json\n"),
    "service-links-on": ("base/deployment.yaml", "enableServiceLinks: false", "enableServiceLinks: true"),
    "runs-as-root": ("base/deployment.yaml", "runAsUser: 65532", "runAsUser: 0"),
    "schema-unknown-field": ("base/deployment.yaml", "  revisionHistoryLimit: 5\n",
                             "  revisionHistoryLimit: 5\n  replica: 3\n"),
    "schema-wrong-type": ("base/service.yaml", "      port: 8080", "      port: \"eighty\""),
    "selectors-into-dns-peer": ("base/kustomization.yaml", "includeSelectors: false", "includeSelectors: true"),
    "readiness-on-health": ("base/deployment.yaml", "              path: /ready", "              path: /health"),
    "memory-limit-below-budget": ("base/deployment.yaml", "              memory: 256Mi\n          securityContext",
                                  "              memory: 160Mi\n          securityContext"),
    "budget-below-concurrency": ("base/config.toml", "memory_budget_mib = 128", "memory_budget_mib = 100"),
    "admin-port-mismatch": ("base/config.toml", 'listen = "0.0.0.0:9090"', 'listen = "0.0.0.0:9091"'),
    "bad-config-key": ("base/config.toml", "allow_plaintext = true", "allow_plaintext = true\nallow_plain = true"),
    "nginx-auth-url-path": ("overlays/ingress-nginx/ingress.yaml", ":8080/auth/forward", ":8080/auth"),
    "nginx-missing-identity": ("overlays/ingress-nginx/ingress.yaml", '"Remote-User,Remote-Groups,Remote-Scopes"', '"Remote-User"'),
    "nginx-missing-scopes": ("overlays/ingress-nginx/ingress.yaml", '"Remote-User,Remote-Groups,Remote-Scopes"',
                             '"Remote-User,Remote-Groups"'),
    "traefik-address-typo": ("overlays/traefik/middleware.yaml", "    address:", "    adress:"),
    "traefik-trust-forward": ("overlays/traefik/middleware.yaml", "    authResponseHeaders:",
                              "    trustForwardHeader: true\n    authResponseHeaders:"),
    "envoy-no-headers": ("overlays/envoy-gateway/securitypolicy.yaml", "      headersToBackend:\n"
                         "        - Remote-User\n        - Remote-Groups\n        - Remote-Scopes\n", ""),
    "envoy-wrong-backend": ("overlays/envoy-gateway/securitypolicy.yaml", "port: 8080", "port: 9090"),
    "gateway-route-missing": ("overlays/gateway-api/securitypolicy.yaml", "      name: app", "      name: ap"),
    "app-open-to-all": ("overlays/traefik/kustomization.yaml", "  - app-networkpolicy.yaml\n", ""),
    "app-policy-wrong-proxy": ("overlays/gateway-api/app-networkpolicy.yaml", "envoy-gateway-system", "traefik"),
    "unchecked-crd": ("overlays/traefik/middleware.yaml", "kind: Middleware", "kind: MiddlewareTCP"),
}


def run_all(args, kube: pathlib.Path):
    problems, objects, core = [], 0, 0
    for target in targets(kube):
        try:
            p, n, c = check_target(args, target)
        except SystemExit as e:
            p, n, c = [str(e)], 0, 0
        problems += p
        objects += n
        core += c
    return problems, objects, core


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--validate", default="kubernetes-validate")
    ap.add_argument("--k8s", default="1.31.0", help="Kubernetes version the schemas are taken from")
    ap.add_argument("--binary", help="authserver binary: `config check` the rendered config.toml")
    ap.add_argument("--negative")
    ap.add_argument("--list-negatives", action="store_true")
    args = ap.parse_args()
    if args.list_negatives:
        print("\n".join(NEGATIVES))
        return
    if args.negative:
        if args.negative.startswith("bad-config") and not args.binary:
            sys.exit(f"{args.negative}: needs --binary")
        file, old, new = NEGATIVES[args.negative]
        with tempfile.TemporaryDirectory() as tmp:
            kube = pathlib.Path(tmp) / "kubernetes"
            shutil.copytree(KUBE, kube)
            text = (kube / file).read_text()
            if old not in text:
                sys.exit(f"{args.negative}: {file} no longer contains {old!r}; update the case")
            (kube / file).write_text(text.replace(old, new, 1))
            problems, _, _ = run_all(args, kube)
        if not problems:
            sys.exit(f"{args.negative}: the planted mistake in {file} was not caught")
        print(f"INFO: negative {args.negative}: caught ({problems[0][:160]})")
        return
    problems, objects, core = run_all(args, KUBE)
    for p in problems:
        print(p)
    n = len(targets(KUBE))
    print(f"INFO: kubernetes: {n} kustomizations, {objects} objects ({core} core, validated against "
          f"{args.k8s} strict), {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
