"""A CloudFormation template resolved for one parameter set, values only (used by check-iam.py).

Conditions, Fn::If, Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split and AWS::NoValue are
evaluated as CloudFormation would. Physical names and ARNs of the stack's own resources are
synthesised from their Name properties (account 123456789012), so ARNs look like deployed ones.
Enough for the policy documents and descriptions of deploy/aws/authserver.yaml; not a general
CloudFormation engine (no Fn::ImportValue, Fn::GetAZs, macros or transforms).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ACCOUNT = "123456789012"
NO_VALUE = object()
POLICY_PROPERTIES = ("PolicyDocument", "KeyPolicy", "ResourcePolicy", "AssumeRolePolicyDocument")

# ------------------------------------------------------------------------------------ YAML loading


def load_template(text):
    class Loader(yaml.SafeLoader):
        pass

    def tag(loader, suffix, node):
        name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else "Fn::" + suffix)
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", tag)
    return yaml.load(text, Loader=Loader)


def load_param_file(path):
    data = json.loads(Path(path).read_text())
    return {p["ParameterKey"]: p["ParameterValue"] for p in data}


# --------------------------------------------------------------------------------------- resolver


class Stack:
    """One template as CloudFormation would resolve it for one parameter set (values only)."""

    def __init__(self, tpl, params, region):
        self.tpl, self.region = tpl, region
        self.params = {}
        for name, spec in tpl.get("Parameters", {}).items():
            value = params.get(name, spec.get("Default"))
            if value is None:
                value = ""
            value = str(value) if not isinstance(value, list) else ",".join(map(str, value))
            if spec.get("Type") == "CommaDelimitedList":
                value = value.split(",") if value != "" else [""]
            self.params[name] = value
        self.pseudo = {"AWS::Region": region, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                       "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "authserver-stack",
                       "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/authserver/1"}
        self.conditions = {}
        self.resources = tpl.get("Resources", {})

    # -- conditions
    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.eval_cond(self.tpl["Conditions"][name]))
        return self.conditions[name]

    def eval_cond(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (k, v), = node.items()
            if k == "Condition":
                return self.condition(v)
            if k == "Fn::Equals":
                a, b = (self.resolve(x) for x in v)
                return _norm(a) == _norm(b)
            if k == "Fn::And":
                return all(self.eval_cond(x) for x in v)
            if k == "Fn::Or":
                return any(self.eval_cond(x) for x in v)
            if k == "Fn::Not":
                return not self.eval_cond(v[0])
        raise ValueError(f"unsupported condition {node!r}")

    def exists(self, logical):
        res = self.resources.get(logical)
        return res is not None and ("Condition" not in res or self.condition(res["Condition"]))

    # -- names and ARNs of the stack's own resources
    def _prop(self, logical, *names):
        props = self.resources[logical].get("Properties", {})
        for n in names:
            if n in props:
                v = self.resolve(props[n])
                if v is not NO_VALUE:
                    return v
        return None

    def ref(self, logical):
        if logical in self.params:
            return self.params[logical]
        if logical in self.pseudo:
            return self.pseudo[logical]
        if logical == "AWS::NoValue":
            return NO_VALUE
        if not self.exists(logical):
            raise ValueError(f"Ref to {logical}, which does not exist with these parameters")
        t, r, a = self.resources[logical]["Type"], self.region, ACCOUNT
        if t == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{r}:{a}:secret:{self._prop(logical, 'Name') or logical}-AbCdEf"
        if t == "AWS::Lambda::Alias":
            fn = self.resolve({"Ref": self.resources[logical]["Properties"]["FunctionName"]["Ref"]})
            return f"arn:aws:lambda:{r}:{a}:function:{fn}:{self._prop(logical, 'Name')}"
        if t == "AWS::Lambda::Function":
            return self._prop(logical, "FunctionName") or logical
        if t == "AWS::SNS::Topic":
            return f"arn:aws:sns:{r}:{a}:{self._prop(logical, 'TopicName') or logical}"
        if t == "AWS::SQS::Queue":
            return f"https://sqs.{r}.amazonaws.com/{a}/{self._prop(logical, 'QueueName') or logical}"
        if t == "AWS::KMS::Key":
            return f"{abs(hash(logical)) % 10**8:08d}-0000-4000-8000-000000000000"
        if t in ("AWS::IAM::Role", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup"):
            return self._prop(logical, "RoleName", "TableName", "LogGroupName") or logical
        if t == "AWS::Lambda::Version":
            return f"arn:aws:lambda:{r}:{a}:function:{logical}:1"
        return f"{logical.lower()}0id"

    def getatt(self, logical, attr):
        if not self.exists(logical):
            raise ValueError(f"GetAtt of {logical}, which does not exist with these parameters")
        t, r, a = self.resources[logical]["Type"], self.region, ACCOUNT
        if attr == "Arn":
            if t == "AWS::IAM::Role":
                return f"arn:aws:iam::{a}:role/{self.ref(logical)}"
            if t == "AWS::Lambda::Function":
                return f"arn:aws:lambda:{r}:{a}:function:{self.ref(logical)}"
            if t == "AWS::Logs::LogGroup":
                return f"arn:aws:logs:{r}:{a}:log-group:{self.ref(logical)}:*"
            if t == "AWS::SQS::Queue":
                return f"arn:aws:sqs:{r}:{a}:{self._prop(logical, 'QueueName') or logical}"
            if t == "AWS::DynamoDB::Table":
                return f"arn:aws:dynamodb:{r}:{a}:table/{self.ref(logical)}"
            if t == "AWS::KMS::Key":
                return f"arn:aws:kms:{r}:{a}:key/{self.ref(logical)}"
            if t == "AWS::Events::Rule":
                return f"arn:aws:events:{r}:{a}:rule/{self._prop(logical, 'Name') or logical}"
            if t.startswith("AWS::WAFv2::"):
                return f"arn:aws:wafv2:{r}:{a}:regional/{logical.lower()}/{self._prop(logical, 'Name')}/id"
            return f"arn:aws:{t.split('::')[1].lower()}:{r}:{a}:{logical.lower()}"
        if attr == "Version":
            return "1"
        return f"{logical}.{attr}"

    # -- values
    def resolve(self, node):
        if isinstance(node, list):
            out = [self.resolve(x) for x in node]
            return [x for x in out if x is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (k, v), = node.items()
            if k == "Ref":
                return self.ref(v)
            if k == "Fn::GetAtt":
                return self.getatt(*(v if isinstance(v, list) else v.split(".", 1)))
            if k == "Fn::If":
                return self.resolve(v[1] if self.condition(v[0]) else v[2])
            if k == "Fn::Sub":
                return self.sub(v)
            if k == "Fn::Join":
                parts = self.resolve(v[1])
                return self.resolve(v[0]).join(_flat(parts))
            if k == "Fn::Select":
                return self.resolve(v[1])[int(self.resolve(v[0]))]
            if k == "Fn::Split":
                return self.resolve(v[1]).split(self.resolve(v[0]))
            if k == "Condition":
                return self.condition(v)
        out = {}
        for k, v in node.items():
            r = self.resolve(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def sub(self, v):
        text, local = (v, {}) if isinstance(v, str) else (v[0], {k: self.resolve(x) for k, x in v[1].items()})

        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self.getatt(*name.split(".", 1)))
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)


def _flat(x):
    return [str(i) for i in x] if isinstance(x, list) else [str(x)]


def _norm(x):
    if isinstance(x, list):
        return [str(i) for i in x]
    return str(x)


def policies(stack):
    """(resource, label, policy document) for every policy document of the resolved stack."""
    out = []
    for logical, res in stack.resources.items():
        if not stack.exists(logical):
            continue
        props = stack.resolve(res.get("Properties", {}))
        for key in POLICY_PROPERTIES:
            if key in props:
                out.append((logical, key, props[key]))
        for i, p in enumerate(props.get("Policies", []) or []):
            out.append((logical, f"Policies/{p.get('PolicyName', i)}", p["PolicyDocument"]))
    return out


def statements(doc):
    st = doc.get("Statement", [])
    return st if isinstance(st, list) else [st]
