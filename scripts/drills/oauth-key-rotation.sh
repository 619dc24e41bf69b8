# shellcheck shell=bash
# Drill for docs/runbooks/oauth-keys.md: the OAuth signing key is rotated while clients keep
# obtaining tokens and resource servers keep validating them with a cached JWKS (act 1, the
# runbook's routine rotation), then the new key is compromised and retired at once (act 2, the
# runbook's "Signing key compromise"). Sourced by scripts/drill (lib.sh loaded).
#
# Set-up: a key set made with `authserver keys generate`; `authserver serve` with one OAuth client
# (client_secret_basic) and the schedule shortened so the drill fits in about two minutes: token
# lifetime 60 s (the smallest allowed), skew 5 s, publish lead 40 s, JWKS max-age 5 s (it must
# stay below the lead minus the server's 30 s key reload, which is not configurable: so 40 s is
# the shortest lead). Traffic (scripts/drills/oauthdrill.py): a client obtaining 4 tokens a
# second into a pool (a fleet of clients each keeping its token until it expires) and four
# validators checking the newest and the oldest live token 8 times a second: PyJWT's
# PyJWKClient and jwcrypto with JWKS caches that refetch when the max-age has run out or on an
# unknown kid, a jwcrypto cache that refetches on the max-age only (a gateway's fixed cache: what
# the lead protects), and POST /auth/validate with the Bearer token.
#
# Act 1 (routine rotation): `keys rotate`. Expected: the new kid is in JWKS (t0, at the server's
# next key reload) well before its first token (at least the max-age: measured, with the lead
# that `keys list` shows), the old key stays published until its last token has expired and then
# leaves JWKS, and no validator refuses any token of either key.
# Act 2 (compromise of the new key): an intruder holding a copy of its private key forges tokens
# and /auth/validate accepts them (the incident). The runbook's steps: `keys rotate --immediate`,
# `keys remove COMPROMISED_KID`. Expected, within the documented bound (the 30 s key reload): the
# compromised kid is out of JWKS, /auth/validate refuses its tokens (forged and legitimate), new
# tokens are signed by the replacement, a kept token of the compromised key gets 401 with
# `WWW-Authenticate: Bearer error="invalid_token"` from /auth/forward, and
# AuthServerOAuthForgedTokens fires on authserver_oauth_token_validation_total{result="unknown_key"}
# (promtool over the real scrapes). The cache-only validator keeps the removed key until its
# max-age runs out and refuses the replacement's tokens until then (runbook step 3: the cost of an
# immediate rotation at caching consumers): counted and bounded, not zero.
# Throughout: no token, private key or client secret in the server log (log level debug).

LIFETIME=60 SKEW=5 LEAD=40 MAX_AGE=5

# keys_cli ARGS...: `authserver keys ...` as the operator runs it (the drill's settings); output
# appended to keys-cli.log and printed.
keys_cli() {
  "${CLEAN_ENV[@]}" "${OAUTH_ENV[@]}" "$BIN" keys "$@" >"$WORK/keys-last.log" 2>&1 ||
    fail "keys $1 failed: $(tail -n 3 "$WORK/keys-last.log")"
  cat "$WORK/keys-last.log" >>"$WORK/keys-cli.log"
  cat "$WORK/keys-last.log"
}

od() { "$PY" "$ROOT/scripts/drills/oauthdrill.py" "$@"; }
show() { od show "$WORK/oauth.json" "$@"; }
now_s() { date +%s.%N | cut -c1-14; }
# fsub A B: A - B, one decimal.
fsub() { python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.1f}')" "$1" "$2"; }
# fge A B: A >= B (numbers).
fge() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$1" "$2"; }

jwks_has() { curl -s -m 2 "$URL/.well-known/jwks.json" | grep -qF "\"kid\":\"$1\""; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s; fails the drill after SECONDS.
wait_until() {
  local limit=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@"; do
    [ "$(date +%s)" -lt "$limit" ] || fail "$what: not within $1 s"
    sleep 0.2
  done
}

token_seen() { [ -n "$(show first-token "$1")" ]; }
k1_gone() { ! jwks_has "$K1"; }
k1_left_seen() { [ -n "$(show left "$K1")" ]; }

run_drill() {
  # The OAuth tools are pinned in scripts/lib/setup.sh (the same as the Python interop tests).
  ensure_venv "${PY_OAUTH_TOOLS[@]}" >/dev/null || fail "could not install the Python OAuth tools"
  local port secret aud="https://api.drill.example" k1 k2 k3 out
  port=$(free_port)
  URL="http://127.0.0.1:$port"
  secret="drill-oauth-$RANDOM$RANDOM:+%"
  (umask 077 && printf '%s\n' "$secret" >"$WORK/client.secret" && mkdir -p "$WORK/keys" "$WORK/leaked")
  clean_env
  OAUTH_ENV=(AUTHSERVER_OAUTH_ISSUER="$URL" AUTHSERVER_OAUTH_AUDIENCES="$aud" AUTHSERVER_OAUTH_KEYS_DIR="$WORK/keys"
    AUTHSERVER_OAUTH_TOKEN_LIFETIME_SECONDS=$LIFETIME AUTHSERVER_OAUTH_SKEW_SECONDS=$SKEW
    AUTHSERVER_OAUTH_PUBLISH_LEAD_SECONDS=$LEAD AUTHSERVER_OAUTH_JWKS_MAX_AGE_SECONDS=$MAX_AGE
    AUTHSERVER_OAUTH_TOKENS_PER_MINUTE=100000)

  step "set-up: an OAuth client (client_secret_basic), 'authserver keys generate', serve (lifetime ${LIFETIME} s, lead ${LEAD} s, JWKS max-age ${MAX_AGE} s)"
  "$PY" - "$WORK/users.json" "$(printf '%s\n' "$secret" | "$BIN" hash-password --m-cost 19456 --t-cost 2)" <<'EOF'
import json, sys
doc = {"drill-client": {"passwordHash": sys.argv[2], "roles": [],
       "oauth": {"scopes": ["reports:read"], "defaultScopes": ["reports:read"],
                 "tokenEndpointAuthMethod": "client_secret_basic"}}}
open(sys.argv[1], "w").write(json.dumps(doc, indent=2) + "\n")
EOF
  out=$(keys_cli generate)
  k1=$(printf '%s' "$out" | awk '/^added/ {print $2}')
  [ -n "$k1" ] || fail "keys generate printed no kid: $out"
  ok "keys generate: $out"
  server_start server "$port" AUTHSERVER_STORE_FILE="$WORK/users.json" AUTHSERVER_LOG_LEVEL=debug "${OAUTH_ENV[@]}" -- ||
    fail "server did not start: $(tail -n 3 "$WORK/server.log")"
  local started
  started=$(now_s)
  ok "server on $URL; JWKS: $(curl -s -D - -o /dev/null "$URL/.well-known/jwks.json" | tr -d '\r' | grep -i '^cache-control')"

  phase baseline
  scraper_start "$URL"
  spawn oauth "$PY" "$ROOT/scripts/drills/oauthdrill.py" run "$URL" "$WORK/oauth.json" "$WORK/phase" \
    --client drill-client --secret-file "$WORK/client.secret" --audience "$aud" \
    --forge-dir "$WORK/leaked" --tokens-out "$WORK/tokens.txt"
  wait_until 15 "first token of $k1" token_seen "$k1"
  wait_scrapes baseline 3
  info "baseline: $(show tokens "$k1") tokens of $k1"

  # ------------------------------------------------------------------------------- act 1
  step "act 1 (runbook: Routine rotation): authserver keys rotate"
  phase rotated
  local t_rot t0 first lead_seen
  t_rot=$(now_s)
  out=$(keys_cli rotate)
  k2=$(printf '%s' "$out" | awk '/^added/ {print $2}')
  [ -n "$k2" ] || fail "keys rotate printed no kid: $out"
  ok "keys rotate: $out"
  info "keys list: $(keys_cli list | awk 'NR > 1 {printf "%s %s; ", $1, $3}')"
  wait_until 35 "$k2 in JWKS (key reload every 30 s)" jwks_has "$k2"
  phase published
  t0=$(now_s)
  ok "$k2 in /.well-known/jwks.json $(fsub "$t0" "$t_rot") s after keys rotate (the server's key reload)"
  wait_until $((LEAD + 5)) "first token of $k2" token_seen "$k2"
  phase switched
  first=$(show first-token "$k2")
  lead_seen=$(fsub "$first" "$t0")
  fge "$(fsub "$first" "$t_rot")" "$((LEAD - 1))" || fail "$k2 signed $(fsub "$first" "$t_rot") s after keys rotate, before the lead"
  fge "$lead_seen" "$MAX_AGE" || fail "$k2 signed ${lead_seen} s after it was published: less than the JWKS max-age"
  ok "first token of $k2 $(fsub "$first" "$t_rot") s after keys rotate, ${lead_seen} s after it was published (lead ${LEAD} s minus the reload delay; a cached JWKS lives ${MAX_AGE} s)"
  info "keys list: $(keys_cli list | awk 'NR > 1 {printf "%s %s; ", $1, $3}')"
  # A legitimate token of the key about to be compromised, kept for the runbook's Verify step.
  printf 'Authorization: Basic %s\n' "$(printf 'drill-client:%s' "$(od_quote)" | base64 -w0)" |
    curl -s -m 5 -H @- -d grant_type=client_credentials "$URL/oauth/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >"$WORK/kept.token" ||
    fail "could not obtain a token to keep"
  chmod 600 "$WORK/kept.token"
  wait_scrapes switched 3

  # ------------------------------------------------------------------------------- act 2
  step "act 2: $k2's private key leaked; an intruder forges tokens with it"
  (umask 077 && cp "$WORK/keys/$k2.pem" "$WORK/leaked/$k2.pem")
  phase compromised
  wait_scrapes compromised 3
  local forged_ok
  forged_ok=$(show intruder compromised 200)
  [ "$forged_ok" -gt 0 ] || fail "the forged tokens were not accepted before the remediation (the drill forges wrongly)"
  info "forged tokens accepted by /auth/validate while $k2 is in service: $forged_ok (the incident)"

  step "remediation (runbook: Signing key compromise): keys rotate --immediate, keys remove $k2"
  phase remediating
  local t_rem t_gone t_new
  out=$(keys_cli rotate --immediate)
  k3=$(printf '%s' "$out" | awk '/^added/ {print $2}')
  ok "keys rotate --immediate: $(printf '%s' "$out" | tr '\n' ' ')"
  out=$(keys_cli remove "$k2")
  t_rem=$(now_s)
  ok "keys remove: $out"
  refused_kept() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H @"$WORK/kept.hdr" "$URL/auth/validate")" = 401 ]; }
  printf 'Authorization: Bearer %s\n' "$(cat "$WORK/kept.token")" >"$WORK/kept.hdr"
  chmod 600 "$WORK/kept.hdr"
  wait_until 35 "/auth/validate refusing $k2's tokens (documented: within the 30 s key reload)" refused_kept
  t_gone=$(now_s)
  phase removed
  jwks_has "$k2" && fail "$k2 still in JWKS although /auth/validate refuses it"
  wait_until 10 "first token of $k3" token_seen "$k3"
  t_new=$(show first-token "$k3")
  ok "$k2 refused by /auth/validate $(fsub "$t_gone" "$t_rem") s after keys remove (bound: 30 s); out of JWKS; first token of $k3 $(fsub "$t_new" "$t_rem") s after"
  local hdr
  hdr=$(curl -s -D - -o /dev/null -m 5 -H @"$WORK/kept.hdr" "$URL/auth/forward" | tr -d '\r')
  printf '%s' "$hdr" | grep -q '^HTTP/[0-9.]* 401' || fail "/auth/forward did not answer 401 to the kept $k2 token"
  printf '%s' "$hdr" | grep -qi '^www-authenticate: Bearer.*error="invalid_token"' ||
    fail "/auth/forward: no WWW-Authenticate: Bearer error=\"invalid_token\""
  ok "runbook Verify: the kept $k2 token gets 401 + WWW-Authenticate: Bearer error=\"invalid_token\" from /auth/forward"
  wait_scrapes removed 10

  # ----------------------------------------------------------- the old key's last tokens
  step "the first key's last tokens: $k1 stays published until they expired, then leaves JWKS"
  phase settled
  local last_exp
  last_exp=$(show last-exp "$k1")
  K1=$k1
  wait_until $((LIFETIME + SKEW + 40)) "$k1 out of JWKS after its last token expired" k1_gone
  wait_until 5 "the watcher seeing $k1 leave" k1_left_seen
  stop oauth
  stop scraper

  step "checks: what the validators saw"
  od show "$WORK/oauth.json" summary | sed 's/^/   /'
  local v n left_k1 last_ok
  for v in pyjwt jwcrypto cache-only validate; do
    n=$(show refused "$v" baseline rotated published switched compromised remediating removed settled "kid=$k1")
    [ "$n" = 0 ] || fail "$v refused $n tokens of $k1 (the retired key)"
    n=$(show refused "$v" baseline rotated published switched compromised "kid=$k2")
    [ "$n" = 0 ] || fail "$v refused $n tokens of $k2 before its compromise"
    [ "$(show checked "$v" switched compromised "kid=$k2")" -gt 0 ] || fail "$v checked no token of $k2"
  done
  ok "act 1: zero refusals by every validator: every token of $k1 (to its expiry) and of $k2 (until its removal)"
  left_k1=$(show left "$k1")
  fge "$left_k1" "$last_exp" || fail "$k1 left JWKS at $left_k1, before its last token expired ($last_exp)"
  for v in pyjwt jwcrypto cache-only validate; do
    last_ok=$(show last-accepted "$v" "$k1")
    fge "$last_ok" "$((${last_exp%.*} - 3))" || fail "$v last accepted a $k1 token at $last_ok, long before its last exp $last_exp"
  done
  ok "$k1: last token expired at $last_exp, validated to $(fsub "$(show last-accepted validate "$k1")" "$last_exp") s of it, left JWKS $(fsub "$left_k1" "$last_exp") s after it (retention = lifetime + skew)"
  for v in jwcrypto validate; do
    n=$(show refused "$v" remediating removed settled "kid=$k3")
    [ "$n" = 0 ] || fail "$v refused $n tokens of the replacement $k3"
  done
  ok "act 2: $k3's tokens accepted at once by jwcrypto (refetch on an unknown kid) and by /auth/validate"
  # PyJWKClient refetches on an unknown kid only 30 s (cooldown_duration) after its last fetch,
  # so within its max-age cache it behaves like the cache-only validator: refusals bounded by it.
  local last_bad
  for v in pyjwt cache-only; do
    n=$(show refused "$v" remediating removed settled "kid=$k3")
    last_bad=$(show last-refused "$v" "$k3")
    if [ "$n" != 0 ]; then
      fge "$(fsub "$t_new" "$last_bad")" "-$((MAX_AGE + 1))" ||
        fail "$v refused $k3 tokens $(fsub "$last_bad" "$t_new") s after its first one: longer than its ${MAX_AGE} s cache"
    fi
    local when=""
    [ -z "$last_bad" ] || when=", the last $(fsub "$last_bad" "$t_new") s after the first token of $k3"
    info "$v: $n of $(show checked "$v" remediating removed settled "kid=$k3") $k3 tokens refused$when (cache max-age ${MAX_AGE} s; runbook step 3)"
  done
  ok "act 2: validators with a cached JWKS that do not refetch at once refused $k3's tokens only until their cache expired"
  n=$(show intruder removed settled 200)
  [ "$n" = 0 ] || fail "a forged token was accepted after the removal ($n)"
  ok "intruder: $forged_ok forged tokens accepted before the remediation, 0 of $(show intruder removed settled all) after it (401)"
  [ "$(show token-errors)" = 0 ] || fail "token requests failed: $(show token-errors)"
  ok "token endpoint: $(show tokens "$k1") + $(show tokens "$k2") + $(show tokens "$k3") tokens, no failed request"

  step "checks: no token, private key or client secret in the server log (debug level)"
  n=$(od secrets-in "$WORK/server.log" "$WORK/tokens.txt" "$WORK/keys/$k1.pem" "$WORK/keys/$k3.pem" "$WORK/leaked/$k2.pem" "$WORK/client.secret") ||
    fail "a secret is in the server log"
  grep -qF -- "$secret" "$WORK/server.log" && fail "the client secret is in the server log"
  ok "none of $n tokens and key lines in server.log ($(wc -l <"$WORK/server.log") lines)"

  promtool_check \
    --silent AuthServerOAuthForgedTokens@baseline \
    --silent AuthServerOAuthForgedTokens@switched \
    --silent AuthServerOAuthForgedTokens@compromised \
    --fires AuthServerOAuthForgedTokens@removed \
    --silent AuthServerErrorsHigh@switched \
    --true 'sum(increase(authserver_oauth_token_validation_total{result="unknown_key"}[5m])) > bool 20@removed' \
    --true '(sum(increase(authserver_oauth_token_validation_total{result=~"signature|unknown_key|algorithm"}[30m])) or vector(0)) == bool 0@compromised' \
    --true "max(authserver_oauth_signing_key_age_seconds) < bool $((LEAD / 2))@switched"
  info "figures: publish-to-sign ${lead_seen} s; removal effective $(fsub "$t_gone" "$t_rem") s; drill $(elapsed) s (server up $(fsub "$(now_s)" "$started") s)"
}

# od_quote: the client secret, form-urlencoded for client_secret_basic (RFC 6749 §2.3.1).
od_quote() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read().rstrip("\n"), safe=""), end="")' "$WORK/client.secret"; }
