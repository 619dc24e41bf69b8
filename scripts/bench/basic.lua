-- scripts/bench-http: one workload of Basic credentials against any peer, counting answers by
-- status. Arguments (after `--`): METHOD PATH WORKLOAD [forwarded], where WORKLOAD is
--   valid   alice:wonderland every time (authserver: a verified-cache hit)
--   wrong   alice with the same wrong password every time
--   spray   a fresh wrong password per request for alice, bob, carol or one of 97 unknown users
-- and `forwarded` adds what a Traefik/Caddy forward auth sends about the original request
-- (X-Forwarded-Method/-Host/-Uri: GET https://app.example.com/app/section/item), which access
-- rules on /auth/forward route by.
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local function ch(k) return chars:sub(k + 1, k + 1) end
    out[#out + 1] = ch(math.floor(n / 262144) % 64) .. ch(math.floor(n / 4096) % 64)
      .. (b and ch(math.floor(n / 64) % 64) or "=") .. (c and ch(n % 64) or "=")
  end
  return table.concat(out)
end

local method, path, workload, counter, users, forwarded = "GET", "/", "valid", 0, {}, false
s200, s401, s429, s503, sother = 0, 0, 0, 0, 0
function init(args)
  method, path, workload = args[1] or "GET", args[2] or "/", args[3] or "valid"
  forwarded = args[4] == "forwarded"
  users = { "alice", "bob", "carol" }
  for i = 4, 100 do users[i] = "user" .. i end
  math.randomseed(os.time() * 100 + (id or 0))
end

function request()
  local credential
  if workload == "valid" then
    credential = "alice:wonderland"
  elseif workload == "wrong" then
    credential = "alice:not-the-password"
  else
    counter = counter + 1
    credential = string.format("%s:spray-%d-%d-%d", users[math.random(#users)], id, counter,
      math.random(1000000000))
  end
  local headers = { ["Authorization"] = "Basic " .. b64(credential) }
  if forwarded then
    headers["X-Forwarded-Method"] = "GET"
    headers["X-Forwarded-Host"] = "app.example.com"
    headers["X-Forwarded-Uri"] = "/app/section/item"
  end
  return wrk.format(method, path, headers, "")
end

function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 401 then s401 = s401 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  local t = { s200 = 0, s401 = 0, s429 = 0, s503 = 0, sother = 0 }
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  io.write(string.format("STATUS 200=%d 401=%d 429=%d 503=%d other=%d errors=%d\n", t.s200, t.s401,
    t.s429, t.s503, t.sother, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
