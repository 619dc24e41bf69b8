"""Check 4 of check-iam.py: the OAuth adapters' AWS calls against the roles that make them.

The calls are read from crates/authserver-aws/src/oauth/*.rs (an SDK builder call with empty
parentheses, `.sign()`, `.get_public_key()`, `.put_item()`, `.get_item()`, and the shared
`secrets::current_value(`, which reads AWSCURRENT).

Proxy (ProxyRole, OAuthRuntimePolicy): each call the chosen signer makes must be allowed on its one
resource by a statement whose conditions hold for the request the code sends: the stack's region,
for kms:Sign `kms:MessageType` RAW and the `kms:SigningAlgorithm` kms.rs uses for the key's spec, for
GetSecretValue `secretsmanager:VersionStage` AWSCURRENT; for every signing key slot that exists
(OAuthKmsKeySlots: a rotation has two keys). kms:Sign and kms:GetPublicKey must also be allowed to
ProxyRole by each key's own key policy (a key policy that does not name the role makes the IAM
grant void).

Lambda authorizer (AuthorizerRole, EnableAuthorizer=true with OAuth on): it validates bearer tokens
with the same issuer code, so it loads the public keys (kms:GetPublicKey per key; secrets_manager:
GetSecretValue AWSCURRENT of the *public* key set OAuthPublicKeySecretArn, never of the key set
OAuthKeySecretArn, whose private keys would let it mint any token) and reads revoked ids (GetItem). It
never issues tokens, records assertion ids or revokes (the /oauth/* routes are the proxy's): every
statement attached to AuthorizerRole must allow exactly the reads (same resources and conditions),
and must not allow kms:Sign on a signing key or dynamodb:PutItem on the jti table; each key policy
must allow GetPublicKey, and not Sign, to AuthorizerRole.

VPC mode: the Secrets Manager and DynamoDB endpoint policies must admit the same calls (the key set
secret, the jti table), or the endpoint denies what the roles allow.

moto enforces no IAM: this is the check that the issuer and the authorizer can run under their roles.
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
# What only issuing does (token endpoint, assertion replay ids, revocation): never the authorizer's.
ISSUE_ONLY = {"kms:Sign", "dynamodb:PutItem"}
# The template's signing key slots (OAuthKmsKeySlots a / b).
KEY_SLOTS = ("OAuthSigningKey", "OAuthSigningKeyB")


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


def _role_statements(stack, role):
    """Every statement attached to `role`: its inline Policies and each AWS::IAM::Policy naming it."""
    out = []
    for p in stack.resolve(stack.resources[role]["Properties"]).get("Policies", []) or []:
        out += statements(p["PolicyDocument"])
    for logical, res in stack.resources.items():
        if res.get("Type") != "AWS::IAM::Policy" or not stack.exists(logical):
            continue
        if {"Ref": role} in _list(res["Properties"].get("Roles", [])):
            out += statements(stack.resolve(res["Properties"])["PolicyDocument"])
    return out


def _signing_keys(stack):
    """(logical id, ARN) of every signing key slot that exists."""
    return [(k, stack.resolve({"Fn::GetAtt": [k, "Arn"]})) for k in KEY_SLOTS if stack.exists(k)]


def _wanted(stack, keys, actions, key_secret="OAuthKeySecretArn"):
    """action -> resources the code calls it on, for the actions in `actions` (`key_secret`: the
    parameter naming the key secret this function reads: the authorizer's is the public one)."""
    table = stack.resolve({"Fn::GetAtt": ["OAuthJtiTable", "Arn"]})
    wanted = {"dynamodb:PutItem": [table], "dynamodb:GetItem": [table]}
    if keys:
        wanted["kms:Sign"] = wanted["kms:GetPublicKey"] = [arn for _, arn in keys]
    if stack.condition("OAuthSecretsManager"):
        wanted["secretsmanager:GetSecretValue"] = [stack.params[key_secret]]
    return {a: r for a, r in wanted.items() if a in actions}


def _contexts(stack):
    region = {"aws:requestedregion": stack.region}
    return region, {
        "kms:Sign": {**region, "kms:messagetype": "RAW",
                     "kms:signingalgorithm": SIGNING_ALGORITHM[stack.params["OAuthKmsKeySpec"]]},
        "secretsmanager:GetSecretValue": {**region, "secretsmanager:versionstage": "AWSCURRENT"},
    }


def findings(stack, label, calls, holds, matches):
    """Messages for OAuth calls the stack does not allow (none when OAuth is off)."""
    if not stack.exists("OAuthRuntimePolicy"):
        return []
    policy = stack.resolve(stack.resources["OAuthRuntimePolicy"]["Properties"])
    stmts = statements(policy["PolicyDocument"])
    keys = _signing_keys(stack)
    if stack.condition("OAuthKms") and not keys:
        return [f"{label}: OAuthSigner=kms but no signing key slot exists"]
    region, contexts = _contexts(stack)
    out = []
    for action, resources in sorted(_wanted(stack, keys, set(SDK_ACTIONS.values()) | {
            "secretsmanager:GetSecretValue"}).items()):
        if action not in calls:
            out.append(f"{label}: OAuthRuntimePolicy grants {action}, which the OAuth code never calls")
            continue
        ctx = contexts.get(action, region)
        for resource in resources:
            if not _allowed(stmts, action, resource, ctx, holds, matches):
                out.append(f"{label}: OAuthRuntimePolicy does not allow {action} on {resource} "
                           f"(the OAuth code calls it; conditions evaluated with {ctx})")
    role = stack.resolve({"Fn::GetAtt": ["ProxyRole", "Arn"]})
    for logical, _ in keys:
        key_policy = statements(stack.resolve(stack.resources[logical]["Properties"]["KeyPolicy"]))
        for action in ("kms:Sign", "kms:GetPublicKey"):
            kctx = {k: v for k, v in contexts.get(action, region).items() if k != "aws:requestedregion"}
            if not _allowed(key_policy, action, "*", kctx, holds, matches, principal=role):
                out.append(f"{label}: the {logical} key policy does not allow {action} to ProxyRole "
                           f"(conditions evaluated with {kctx})")
    return out + authorizer_findings(stack, label, calls, holds, matches, keys) + endpoint_findings(
        stack, label, calls, holds, matches)


def endpoint_findings(stack, label, calls, holds, matches):
    """In VPC mode the functions reach AWS only through the VPC endpoints: an endpoint policy that
    does not admit an OAuth call denies it whatever the role allows (the key set secret and the
    jti table through the Secrets Manager and DynamoDB endpoints)."""
    out = []
    wanted = []
    if stack.exists("SecretsManagerEndpoint") and stack.condition("OAuthSecretsManager"):
        wanted.append(("SecretsManagerEndpoint", "secretsmanager:GetSecretValue", stack.params["OAuthKeySecretArn"]))
        if stack.exists("AuthorizerRole"):
            wanted.append(("SecretsManagerEndpoint", "secretsmanager:GetSecretValue",
                           stack.params["OAuthPublicKeySecretArn"]))
    if stack.exists("DynamoDbEndpoint"):
        table = stack.resolve({"Fn::GetAtt": ["OAuthJtiTable", "Arn"]})
        wanted += [("DynamoDbEndpoint", a, table) for a in ("dynamodb:GetItem", "dynamodb:PutItem")]
    for endpoint, action, resource in wanted:
        if action not in calls:
            continue
        doc = stack.resolve(stack.resources[endpoint]["Properties"]).get("PolicyDocument")
        if doc is not None and not _allowed(statements(doc), action, resource, {}, holds, matches):
            out.append(f"{label}: the {endpoint} policy does not admit {action} on {resource} (VPC mode: "
                       f"the OAuth code calls it through that endpoint)")
    return out


def authorizer_findings(stack, label, calls, holds, matches, keys):
    """The Lambda authorizer's bearer validation: reads allowed, issuing refused (module docs)."""
    if not stack.exists("AuthorizerRole"):
        return []
    stmts = _role_statements(stack, "AuthorizerRole")
    region, contexts = _contexts(stack)
    reads = calls - ISSUE_ONLY
    out = []
    for action, resources in sorted(_wanted(stack, keys, reads, "OAuthPublicKeySecretArn").items()):
        ctx = contexts.get(action, region)
        for resource in resources:
            if not _allowed(stmts, action, resource, ctx, holds, matches):
                out.append(f"{label}: AuthorizerRole does not allow {action} on {resource} (bearer "
                           f"validation calls it; conditions evaluated with {ctx})")
    for action, resources in sorted(_wanted(stack, keys, ISSUE_ONLY).items()):
        ctx = contexts.get(action, region)
        for resource in resources:
            if _allowed(stmts, action, resource, ctx, holds, matches):
                out.append(f"{label}: AuthorizerRole may {action} on {resource}: the authorizer only "
                           f"validates tokens (issuing is the proxy's)")
    if stack.condition("OAuthSecretsManager"):
        private = stack.params["OAuthKeySecretArn"]
        ctx = contexts["secretsmanager:GetSecretValue"]
        if _allowed(stmts, "secretsmanager:GetSecretValue", private, ctx, holds, matches):
            out.append(f"{label}: AuthorizerRole may read the private key set {private}: the authorizer "
                       f"only validates tokens (OAuthPublicKeySecretArn holds the public keys)")
    if stack.exists("AuthorizerOAuthPolicy"):
        policy = stack.resolve(stack.resources["AuthorizerOAuthPolicy"]["Properties"])
        for st in statements(policy["PolicyDocument"]):
            for action in _list(st.get("Action", [])):
                if action not in reads:
                    out.append(f"{label}: AuthorizerOAuthPolicy grants {action}, which bearer validation "
                               f"never calls")
    role = stack.resolve({"Fn::GetAtt": ["AuthorizerRole", "Arn"]})
    for logical, _ in keys:
        key_policy = statements(stack.resolve(stack.resources[logical]["Properties"]["KeyPolicy"]))
        if not _allowed(key_policy, "kms:GetPublicKey", "*", {}, holds, matches, principal=role):
            out.append(f"{label}: the {logical} key policy does not allow kms:GetPublicKey to AuthorizerRole")
        sign_ctx = {k: v for k, v in contexts["kms:Sign"].items() if k != "aws:requestedregion"}
        if _allowed(key_policy, "kms:Sign", "*", sign_ctx, holds, matches, principal=role):
            out.append(f"{label}: the {logical} key policy allows kms:Sign to AuthorizerRole")
    return out
