"""Independent clients against a running authserver (issue 14).

authlib obtains tokens with each client-authentication method (client_secret_basic with a
secret that needs form-urlencoding, client_secret_post, private_key_jwt), introspects and
revokes; PyJWT and jwcrypto validate the tokens from the discovery document's jwks_uri; and
tokens forged with the server's own key (wrong typ, aud, exp, kid) or none at all (alg none,
HS256 over the public key) are refused by /auth/forward with the one Bearer challenge.

Usage: oauth_interop.py FIXTURE.json   (written by crates/authserver/tests/oauth_python.rs)
Prints one line per check and "ok N" at the end; any failure raises (exit 1).
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import uuid

import jwt as pyjwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt as ajwt
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey
from jwcrypto import jwk as cjwk, jwt as cjwt

F = json.load(open(sys.argv[1]))
BASE = F["base"]
CHECKS = 0


def check(name, cond, detail=""):
    global CHECKS
    if not cond:
        raise SystemExit(f"FAIL {name} {detail}")
    CHECKS += 1
    print(f"pass {name}")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


meta = requests.get(f"{BASE}/.well-known/openid-configuration", timeout=5).json()
meta2 = requests.get(f"{BASE}/.well-known/oauth-authorization-server", timeout=5).json()
check("discovery documents agree", meta == meta2 and meta["issuer"] == F["issuer"])
TOKEN_URL = meta["token_endpoint"]
JWKS_URI = meta["jwks_uri"]


def basic_session():
    return OAuth2Session(F["basic_id"], F["basic_secret"], token_endpoint_auth_method="client_secret_basic")


tokens = {}
tokens["basic"] = basic_session().fetch_token(TOKEN_URL, grant_type="client_credentials", scope="read write")
check("authlib client_secret_basic (secret with : % +)", tokens["basic"]["token_type"].lower() == "bearer")
post = OAuth2Session(F["post_id"], F["post_secret"], token_endpoint_auth_method="client_secret_post")
tokens["post"] = post.fetch_token(TOKEN_URL, grant_type="client_credentials")
check("authlib client_secret_post", "access_token" in tokens["post"])
client_key = open(F["client_key"]).read()
# An EC key object: authlib reads a PEM string as RSA.
jwt_session = OAuth2Session(F["jwt_id"], ECKey.import_key(client_key), token_endpoint_auth_method="private_key_jwt")
jwt_session.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, alg="ES256", headers={"kid": F["client_kid"]}))
tokens["jwt"] = jwt_session.fetch_token(TOKEN_URL, grant_type="client_credentials")
check("authlib private_key_jwt (ES256)", "access_token" in tokens["jwt"])

jwks_client = pyjwt.PyJWKClient(JWKS_URI)
for name, tok in tokens.items():
    access = tok["access_token"]
    header = pyjwt.get_unverified_header(access)
    key = jwks_client.get_signing_key_from_jwt(access)
    claims = pyjwt.decode(access, key.key, algorithms=["ES256", "RS256"], audience=F["audience"], issuer=F["issuer"])
    check(f"PyJWT validates the {name} token", header["typ"] == "at+jwt" and claims["client_id"] == claims["sub"])
    keyset = cjwk.JWKSet.from_json(requests.get(JWKS_URI, timeout=5).text)
    verified = cjwt.JWT(jwt=access, key=keyset, algs=["ES256", "RS256"], check_claims={"iss": F["issuer"], "aud": F["audience"], "exp": None})
    check(f"jwcrypto validates the {name} token", json.loads(verified.claims)["iss"] == F["issuer"])


def forward(token):
    r = requests.get(f"{BASE}/auth/forward", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    return r.status_code, r.headers.get("WWW-Authenticate", "")


status, _ = forward(tokens["basic"]["access_token"])
check("a valid token passes /auth/forward", status == 200)

# Forgeries, each refused with the same challenge.
good = tokens["basic"]["access_token"]
good_claims = pyjwt.decode(good, options={"verify_signature": False})
kid = pyjwt.get_unverified_header(good)["kid"]
server_key = JsonWebKey.import_key(open(F["server_key"]).read())
public_pem = jwks_client.get_signing_key(kid).key.public_bytes(
    encoding=__import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM,
    format=__import__("cryptography.hazmat.primitives.serialization", fromlist=["PublicFormat"]).PublicFormat.SubjectPublicKeyInfo,
)


def signed(header, claims):
    return ajwt.encode(header, claims, server_key).decode()


now = int(time.time())
none_token = b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode()) + "." + b64(json.dumps(good_claims).encode()) + "."
hs_input = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode()) + "." + b64(json.dumps(good_claims).encode())
hs_token = hs_input + "." + b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
forged = {
    "alg none": none_token,
    "HS256 with the public key as secret": hs_token,
    "typ JWT": signed({"alg": "ES256", "typ": "JWT", "kid": kid}, good_claims),
    "wrong aud": signed({"alg": "ES256", "typ": "at+jwt", "kid": kid}, {**good_claims, "aud": "https://elsewhere.test"}),
    "expired": signed({"alg": "ES256", "typ": "at+jwt", "kid": kid}, {**good_claims, "iat": now - 7200, "exp": now - 3600}),
    "unknown kid": signed({"alg": "ES256", "typ": "at+jwt", "kid": "no-such-kid"}, good_claims),
}
check("control: the server key signs an accepted token", forward(signed({"alg": "ES256", "typ": "at+jwt", "kid": kid}, good_claims))[0] == 200)
for name, token in forged.items():
    status, challenge = forward(token)
    check(f"refused: {name}", status == 401 and challenge == 'Bearer error="invalid_token"', f"{status} {challenge}")

# Introspection and revocation through authlib.
basic = basic_session()
intro = basic.introspect_token(meta["introspection_endpoint"], token=good).json()
check("introspection: active", intro["active"] is True and intro["client_id"] == F["basic_id"])
check("revocation answers 200", basic.revoke_token(meta["revocation_endpoint"], token=good).status_code == 200)
check("revoked token refused", forward(good)[0] == 401)
intro = basic.introspect_token(meta["introspection_endpoint"], token=good).json()
check("introspection of a revoked token is exactly {active: false}", intro == {"active": False})

# A replayed assertion jti.
assertion_claims = {"iss": F["jwt_id"], "sub": F["jwt_id"], "aud": TOKEN_URL, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
assertion = ajwt.encode({"alg": "ES256", "kid": F["client_kid"]}, assertion_claims, JsonWebKey.import_key(client_key)).decode()
form = {"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion}
first = requests.post(TOKEN_URL, data=form, timeout=5)
again = requests.post(TOKEN_URL, data=form, timeout=5)
check("replayed assertion jti refused", first.status_code == 200 and again.status_code == 401 and again.json()["error"] == "invalid_client")

# Everything secret this run handled, for the caller's search of the server's output.
with open(F["seen"], "w") as out:
    for tok in tokens.values():
        out.write(tok["access_token"] + "\n")
    for t in list(forged.values()) + [assertion, good]:
        out.write(t + "\n")

print(f"ok {CHECKS}")
