"""Check 4 of check-iam.py: the OAuth adapters' AWS calls against the proxy's permissions.

The calls are read from crates/authserver-aws/src/oauth/*.rs (an SDK builder call with empty
parentheses, `.sign()`, `.get_public_key()`, `.put_item()`, `.get_item()`, and the shared
`secrets::current_value(`, which reads AWSCURRENT). Each one the chosen signer makes must be allowed
on its one resource by a statement of OAuthRuntimePolicy whose conditions hold for the request the
code sends: the stack's region, for kms:Sign `kms:MessageType` RAW and the `kms:SigningAlgorithm`
kms.rs uses for the key's spec, for GetSecretValue `secretsmanager:VersionStage` AWSCURRENT. kms:Sign
and kms:GetPublicKey must also be allowed to ProxyRole by the signing key's own key policy (a key
policy that does not name the role makes the IAM grant void). moto enforces no IAM: this is the check
that the issuer can run under the role at all.
"""
from __future__ import annotations

import re
from pathlib import Path

from cfn_resolve import statements

ROOT = Path(__file__).resolve().parent.parent
OAUTH_SRC = ROOT / "crates/authserver-aws/src/oauth"
SDK_ACTIONS = {"sign": "kms:Sign", "get_public_key": "kms:GetPublicKey",
               "put_item": "dynamodb:PutItem", "get_item": "dynamodb:GetItem"}
# kms.rs: Alg::Rs256 / Alg::Es256 -> SigningAlgorithmSpec, chosen by the key's spec.
SIGNING_ALGORITHM = {"RSA_2048": "RSASSA_PKCS1_V1_5_SHA_256", "ECC_NIST_P256": "ECDSA_SHA_256"}


def oauth_calls(src: Path = OAUTH_SRC) -> set[str]:
    calls = set()
    for f in sorted(src.glob("*.rs")):
        text = f.read_text()
        calls.update(SDK_ACTIONS[m] for m in re.findall(r"\.(sign|get_public_key|put_item|get_item)\(\)", text))
        if re.search(r"secrets::current_value\(", text):
            calls.add("secretsmanager:GetSecretValue")
    if not calls:
        raise ValueError(f"{src}: no AWS call found (layout changed?)")
    return calls


def _list(x):
    return x if isinstance(x, list) else [x]


def _allowed(stmts, action, resource, context, holds, matches, principal=None):
    for st in stmts:
        if st.get("Effect") != "Allow":
            continue
        if principal is not None and principal not in _list((st.get("Principal") or {}).get("AWS", [])):
            continue
        if any(matches(a, action) for a in _list(st.get("Action", []))) \
                and any(matches(r, resource) for r in _list(st.get("Resource", []))) \
                and holds(st.get("Condition"), context):
            return True
    return False


def findings(stack, label, calls, holds, matches):
    """Messages for OAuth calls the stack does not allow (none when OAuth is off)."""
    if not stack.exists("OAuthRuntimePolicy"):
        return []
    policy = stack.resolve(stack.resources["OAuthRuntimePolicy"]["Properties"])
    stmts = statements(policy["PolicyDocument"])
    kms = stack.condition("OAuthKms")
    key = stack.resolve({"Fn::GetAtt": ["OAuthSigningKey", "Arn"]}) if kms else None
    wanted = {
        "dynamodb:PutItem": stack.resolve({"Fn::GetAtt": ["OAuthJtiTable", "Arn"]}),
        "dynamodb:GetItem": stack.resolve({"Fn::GetAtt": ["OAuthJtiTable", "Arn"]}),
    }
    if kms:
        wanted["kms:Sign"] = wanted["kms:GetPublicKey"] = key
    if stack.condition("OAuthSecretsManager"):
        wanted["secretsmanager:GetSecretValue"] = stack.params["OAuthKeySecretArn"]
    region = {"aws:requestedregion": stack.region}
    context = {
        "kms:Sign": {**region, "kms:messagetype": "RAW",
                     "kms:signingalgorithm": SIGNING_ALGORITHM[stack.params["OAuthKmsKeySpec"]]},
        "secretsmanager:GetSecretValue": {**region, "secretsmanager:versionstage": "AWSCURRENT"},
    }
    out = []
    for action, resource in sorted(wanted.items()):
        if action not in calls:
            out.append(f"{label}: OAuthRuntimePolicy grants {action}, which the OAuth code never calls")
            continue
        ctx = context.get(action, region)
        if not _allowed(stmts, action, resource, ctx, holds, matches):
            out.append(f"{label}: OAuthRuntimePolicy does not allow {action} on {resource} "
                       f"(the OAuth code calls it; conditions evaluated with {ctx})")
        if action.startswith("kms:"):
            key_policy = stack.resolve(stack.resources["OAuthSigningKey"]["Properties"]["KeyPolicy"])
            role = stack.resolve({"Fn::GetAtt": ["ProxyRole", "Arn"]})
            kctx = {k: v for k, v in ctx.items() if k != "aws:requestedregion"}
            if not _allowed(statements(key_policy), action, "*", kctx, holds, matches, principal=role):
                out.append(f"{label}: the OAuthSigningKey key policy does not allow {action} to ProxyRole "
                           f"(conditions evaluated with {kctx})")
    return out
