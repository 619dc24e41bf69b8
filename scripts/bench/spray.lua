-- scripts/bench-spray: every request a fresh wrong password for a username from the pool, from
-- an address from the pool (when args[1] == "xff"); counts answers by status per thread.
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

local xff, users, sources, counter = false, {}, {}, 0
c401, c429, c503, cother = 0, 0, 0, 0
function init(args)
  xff = args[1] == "xff"
  local nsources, nusers = tonumber(args[2]), tonumber(args[3])
  users = { "alice", "bob", "carol" }
  for i = 4, nusers do users[i] = "user" .. i end
  for i = 1, nsources do sources[i] = "203.0.113." .. i end
  math.randomseed(os.time() * 100 + id)
end

function request()
  counter = counter + 1
  local user = users[math.random(#users)]
  local password = string.format("spray-%d-%d-%d", id, counter, math.random(1000000000))
  local headers = { ["Authorization"] = "Basic " .. b64(user .. ":" .. password) }
  if xff then headers["X-Forwarded-For"] = sources[math.random(#sources)] end
  return wrk.format("POST", "/auth/validate", headers, "")
end

function response(status, headers, body)
  if status == 401 then c401 = c401 + 1
  elseif status == 429 then c429 = c429 + 1
  elseif status == 503 then c503 = c503 + 1
  else cother = cother + 1 end
end

function done(summary, latency, requests)
  local t = { c401 = 0, c429 = 0, c503 = 0, cother = 0 }
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  io.write(string.format("SPRAY requests=%d errors=%d s401=%d s429=%d s503=%d other=%d\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, t.c401, t.c429, t.c503, t.cother))
end
