"""The drills' calls to the local AWS endpoint (moto), as `drillkit.py aws URL OP ...` (boto3:
run with the .venv interpreter; the region comes from AWS_REGION).

    aws URL create NAME (--value V | --file F)   CreateSecret
    aws URL arn SECRET                           prints the secret's ARN
    aws URL call METHOD SECRET [KEY=VALUE...]    one Secrets Manager call (digits become ints)
    aws URL value SECRET STAGE                   prints the value of the version labelled STAGE
    aws URL stages SECRET                        prints "STAGE=VERSION ..." for each label, sorted
    aws URL rotate-begin SECRET                  RotateSecret with a rotation function registered
                                                 in moto's Lambda (nothing runs there); prints the
                                                 token, the id of the new AWSPENDING version
"""

import io
import json
import os
import urllib.request
import uuid
import zipfile


def client(url, service="secretsmanager"):
    import boto3

    return boto3.client(service, endpoint_url=url, region_name=os.environ.get("AWS_REGION"))


def create(a):
    value = open(a.file).read() if a.file else a.value
    client(a.url).create_secret(Name=a.name, SecretString=value)


def arn(a):
    print(client(a.url).describe_secret(SecretId=a.secret)["ARN"])


def call(a):
    kw = {"SecretId": a.secret}
    for arg in a.kwargs:
        k, v = arg.split("=", 1)
        kw[k] = int(v) if v.isdigit() else v
    getattr(client(a.url), a.method)(**kw)


def value(a):
    print(client(a.url).get_secret_value(SecretId=a.secret, VersionStage=a.stage)["SecretString"])


def stages(a):
    d = client(a.url).describe_secret(SecretId=a.secret)
    print(" ".join(sorted(f"{s}={v}" for v, labels in d["VersionIdsToStages"].items() for s in labels)))


def rotate_begin(a):
    # moto's Lambda without Docker: functions are stored, "invocations" run nothing.
    urllib.request.urlopen(urllib.request.Request(
        a.url + "/moto-api/config", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"lambda": {"use_docker": False}}).encode()))
    name = "drill-rotation-" + uuid.uuid4().hex[:8]
    role = client(a.url, "iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))["Role"]["Arn"]
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").writestr("bootstrap", "")
    fn = client(a.url, "lambda").create_function(
        FunctionName=name, Runtime="provided.al2023", Role=role, Handler="bootstrap",
        Code={"ZipFile": buf.getvalue()})["FunctionArn"]
    out = client(a.url).rotate_secret(SecretId=a.secret, RotationLambdaARN=fn,
                                      RotationRules={"AutomaticallyAfterDays": 30})
    print(out["VersionId"])


def register(sub):
    """Adds `aws URL OP ...` to drillkit.py's subcommands."""
    p = sub.add_parser("aws", help="calls to the moto server at URL")
    p.add_argument("url")
    ops = p.add_subparsers(dest="op", required=True)
    o = ops.add_parser("create")
    o.add_argument("name")
    g = o.add_mutually_exclusive_group(required=True)
    g.add_argument("--value")
    g.add_argument("--file")
    o.set_defaults(func=create)
    o = ops.add_parser("arn")
    o.add_argument("secret")
    o.set_defaults(func=arn)
    o = ops.add_parser("call")
    o.add_argument("method")
    o.add_argument("secret")
    o.add_argument("kwargs", nargs="*")
    o.set_defaults(func=call)
    o = ops.add_parser("value")
    o.add_argument("secret")
    o.add_argument("stage")
    o.set_defaults(func=value)
    o = ops.add_parser("stages")
    o.add_argument("secret")
    o.set_defaults(func=stages)
    o = ops.add_parser("rotate-begin")
    o.add_argument("secret")
    o.set_defaults(func=rotate_begin)
