#!/usr/bin/env python3
"""The template's Rules, evaluated locally for every parameter set (run by scripts/test-deploy.sh).

CloudFormation evaluates `Rules` only when a stack is created or updated; cfn-lint checks their
syntax. So a parameter file that breaks a rule (staging once shipped EnableAuthorizer=true with
EdgeProtection=rest-api) passes every local check and fails at deploy. This evaluates each rule's
RuleCondition and Assertions with scripts/cfn_resolve.py for the same parameter sets as the other
checks, and the negative cases prove that each rule refuses what it is meant to refuse.

    check-rules.py [--template T] [--region R] [PARAMFILE ...]   # every set must pass every rule
    check-rules.py --negative CASE | --list-negatives             # a bad combination must be refused

Last output line: "INFO: ..."; exit status 1 when a parameter set breaks a rule.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cfn_resolve import Stack, load_param_file, load_template  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy/aws/authserver.yaml"

# case: (region, parameters, the rule that must refuse them)
NEGATIVES = {
    "authorizer-with-rest-api-edge": (
        "us-east-1", {"EnableAuthorizer": "true", "EdgeProtection": "rest-api"}, "AuthorizerNeedsHttpApiEntry"),
    "vpc-without-subnets": (
        "us-east-1", {"EnableVpc": "true", "VpcId": "vpc-0123456789abcdef0"}, "VpcModeNeedsVpc"),
    "cloudfront-outside-us-east-1": (
        "eu-west-1", {"EdgeProtection": "cloudfront", "EdgeOriginSecret": "x" * 32}, "CloudFrontEdgeNeedsUsEast1"),
    "cloudfront-without-origin-secret": (
        "us-east-1", {"EdgeProtection": "cloudfront"}, "CloudFrontEdgeNeedsOriginSecret"),
    "replica-in-own-region": (
        "us-east-1", {"SecretReplicaRegion": "us-east-1",
                      "SecretReplicaKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0123abcd-4567-89ab-cdef-0123456789ab"},
        "SecretReplicaNeedsKeyAndOtherRegion"),
    "oauth-secrets-manager-without-secret": (
        "us-east-1", {"OAuthSigner": "secrets_manager"}, "OAuthSecretsManagerNeedsKeySecret"),
    "oauth-authorizer-without-public-secret": (
        "us-east-1", {"OAuthSigner": "secrets_manager", "EnableAuthorizer": "true", "OAuthKeySecretArn":
                      "arn:aws:secretsmanager:us-east-1:123456789012:secret:oauth-keys-AbCdEf"},
        "OAuthAuthorizerNeedsPublicKeySecret"),
    "jwt-authorizer-without-signer": (
        "us-east-1", {"EnableJwtAuthorizer": "true", "OAuthAudience": "https://api.example.com",
                      "ProtectedBackendUrl": "https://backend.example.com"},
        "JwtAuthorizerNeedsIssuerAudienceBackend"),
    "jwt-authorizer-without-audience": (
        "us-east-1", {"EnableJwtAuthorizer": "true", "OAuthSigner": "kms",
                      "ProtectedBackendUrl": "https://backend.example.com"},
        "JwtAuthorizerNeedsIssuerAudienceBackend"),
    "oauth-without-audience": (
        "us-east-1", {"OAuthSigner": "kms"}, "OAuthNeedsAudience"),
    "kms-second-key-without-activation": (
        "us-east-1", {"OAuthSigner": "kms", "OAuthKmsKeySlots": "a,b"}, "OAuthKmsSecondKeyNeedsActivation"),
    "kms-second-key-without-kms": (
        "us-east-1", {"OAuthSigner": "secrets_manager", "OAuthKeySecretArn":
                      "arn:aws:secretsmanager:us-east-1:123456789012:secret:oauth-keys-AbCdEf",
                      "OAuthKmsKeySlots": "b,a", "OAuthKmsNextActivatesAt": "2027-01-01T02:15:00Z"},
        "OAuthKmsSecondKeyNeedsActivation"),
}


def broken_rules(tpl, params, region):
    """[(rule, description)] of the assertions that fail for this parameter set."""
    stack = Stack(tpl, params, region)
    out = []
    for name, rule in (tpl.get("Rules") or {}).items():
        if "RuleCondition" in rule and not stack.eval_cond(rule["RuleCondition"]):
            continue
        for a in rule.get("Assertions", []):
            if not stack.eval_cond(a["Assert"]):
                out.append((name, " ".join(str(a.get("AssertDescription", "")).split())))
    return out


def region_of(params, default):
    # CloudFront mode deploys in us-east-1 only (rule CloudFrontEdgeNeedsUsEast1): that is where its
    # parameter sets are meant for.
    return "us-east-1" if params.get("EdgeProtection") == "cloudfront" else default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template", default=str(TEMPLATE))
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--negative")
    ap.add_argument("--list-negatives", action="store_true")
    ap.add_argument("param_files", nargs="*")
    args = ap.parse_args()
    tpl = load_template(Path(args.template).read_text())
    if args.list_negatives:
        print("\n".join(NEGATIVES))
        return
    if args.negative:
        region, params, rule = NEGATIVES[args.negative]
        broken = broken_rules(tpl, params, region)
        for name, why in broken:
            print(f"refused by {name}: {why}")
        if rule not in [n for n, _ in broken]:
            sys.exit(f"{args.negative}: rule {rule} did not refuse {params} in {region}")
        print(f"INFO: negative {args.negative}: refused by {rule}")
        return
    sets = [("default", {})] + [(Path(p).stem, load_param_file(p)) for p in args.param_files]
    bad = 0
    for label, params in sets:
        for name, why in broken_rules(tpl, params, region_of(params, args.region)):
            print(f"{label}: breaks rule {name}: {why}")
            bad += 1
    print(f"INFO: rules: {len(tpl.get('Rules') or {})} rules hold for {len(sets)} parameter sets"
          if not bad else f"INFO: rules: {bad} broken")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
