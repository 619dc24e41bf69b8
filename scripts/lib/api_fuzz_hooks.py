"""Draws the request headers the OpenAPI document cannot describe (see scripts/api-fuzz).

Loaded by schemathesis as SCHEMATHESIS_HOOKS=api_fuzz_hooks with scripts/lib on PYTHONPATH.
"""
import base64
import string

import schemathesis
from hypothesis import strategies as st

# Any Unicode text, control characters and colons included: it is base64-encoded before use.
text = st.text(st.characters(codec="utf-8"), max_size=40)
users = st.one_of(st.sampled_from(["alice", "bob", "carol", "nobody", "Alice"]), text)
passwords = st.one_of(st.sampled_from(["wonderland", "builder", "pass:with:colons", ""]), text)
pairs = st.one_of(st.builds("{}:{}".format, users, passwords), text)


def b64(s, pad=True):
    token = base64.b64encode(s.encode("utf-8")).decode()
    return token if pad else token.rstrip("=")


tokens = st.one_of(
    st.just(b64("alice:wonderland")),
    pairs.map(b64),
    pairs.map(lambda s: b64(s, pad=False)),
    st.text(string.ascii_letters + string.digits + "+/=-_!*.", max_size=80),
)
authorization = st.builds(
    "{}{}{}".format,
    st.sampled_from(["Basic", "basic", "BASIC", "Bearer", "Digest", "Basicx"]),
    st.sampled_from([" ", "  ", "\t"]),
    tokens,
)
# Header values as an HTTP client may send them: printable, not starting with whitespace.
printable = st.text(string.ascii_letters + string.digits + string.punctuation + " ", max_size=140).map(str.lstrip)
request_id = st.one_of(st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z"), printable)
ipv4 = st.ip_addresses(v=4).map(str)
ip = st.one_of(ipv4, st.ip_addresses(v=6).map(str))
forwarded = st.one_of(ip, st.lists(ip, min_size=2, max_size=4).map(", ".join), printable)


@schemathesis.hook
def flatmap_headers(context, headers):
    def merge(auth, rid, xff):
        merged = dict(headers or {})
        for name, value in (("Authorization", auth), ("X-Request-Id", rid), ("X-Forwarded-For", xff)):
            if value is not None:
                merged[name] = value
        return merged

    maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
    return st.builds(merge, maybe(authorization), maybe(request_id), maybe(forwarded))
