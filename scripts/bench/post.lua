-- scripts/bench-http: POST /auth/validate as alice:wonderland (a verified-cache hit).
wrk.method = "POST"
wrk.headers["Authorization"] = "Basic YWxpY2U6d29uZGVybGFuZA=="
