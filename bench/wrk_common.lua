-- Shared by the bench/*.lua wrk scripts: request building, float packing and
-- response checking. A scenario script loads it with
--   local bench = dofile(<its own directory> .. "wrk_common.lua")
-- and calls bench.post(body, headers).
--
-- Checking: every response must be 200, and when the script is given an
-- expected body size (wrk ... -- BYTES) every body must have that size. At the
-- end one line is printed for bench/run.sh to parse:
--   BENCH_RESULT requests=N duration_s=S rps=R p50_us=.. p90_us=.. p99_us=.. max_us=..
--                responses=N bad_status=N bad_size=N errors=N body_bytes=N
-- (body_bytes: the size of the first 200 response body, for bench/run.sh to
-- size the static baseline's answer).
-- A run with bad_status, bad_size or errors above 0 is invalid.

local bench = {}

-- IEEE-754 single precision, little endian. wrk's LuaJIT (Lua 5.1) has no
-- string.pack; where a Lua 5.3+ wrk provides it, it is used instead.
local function pack_f32_manual(x)
  if x ~= x then return "\0\0\192\127" end  -- NaN
  local sign = 0
  if x < 0 or (x == 0 and 1 / x < 0) then sign = 1; x = -x end
  local exponent, mantissa
  if x == 0 then
    exponent, mantissa = 0, 0
  elseif x == math.huge then
    exponent, mantissa = 255, 0
  else
    local m, e = math.frexp(x)           -- x = m * 2^e, 0.5 <= m < 1
    exponent = e + 126                   -- biased exponent of (2m) * 2^(e-1)
    if exponent <= 0 then                -- subnormal
      mantissa = math.floor(x / 2 ^ -149 + 0.5)
      exponent = 0
    else
      mantissa = math.floor((m * 2 - 1) * 2 ^ 23 + 0.5)
      if mantissa == 2 ^ 23 then mantissa = 0; exponent = exponent + 1 end
      if exponent >= 255 then exponent, mantissa = 255, 0 end
    end
  end
  local bits = sign * 2 ^ 31 + exponent * 2 ^ 23 + mantissa
  local b = {}
  for i = 1, 4 do
    b[i] = bits % 256
    bits = math.floor(bits / 256)
  end
  return string.char(b[1], b[2], b[3], b[4])
end

-- bench.pack_f32({1, 2, 3}) == string.pack('<fff', 1, 2, 3)
function bench.pack_f32(values)
  if string.pack then
    return string.pack("<" .. string.rep("f", #values), unpack(values))
  end
  local parts = {}
  for i, v in ipairs(values) do parts[i] = pack_f32_manual(v) end
  return table.concat(parts)
end

-- Every request of the run: POST body, with extra headers.
-- With BENCH_AUTHORIZATION in the environment ("Bearer KEY"), every request
-- carries it as its Authorization header.
function bench.post(body, headers)
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  for k, v in pairs(headers or {}) do wrk.headers[k] = v end
  local authorization = os.getenv("BENCH_AUTHORIZATION")
  if authorization and authorization ~= "" then wrk.headers["Authorization"] = authorization end
end

-- -------------------------------------------------------------- checking
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected_size = tonumber(args[1] or "")
  responses, bad_status, bad_size, body_bytes = 0, 0, 0, -1
  first_bad = nil
end

function response(status, headers, body)
  responses = responses + 1
  if status == 200 and body_bytes < 0 then body_bytes = #body end
  if status ~= 200 then
    bad_status = bad_status + 1
    if not first_bad then first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
  elseif expected_size and #body ~= expected_size then
    bad_size = bad_size + 1
    if not first_bad then first_bad = "size " .. #body .. " != " .. expected_size end
  end
end

function done(summary, latency, requests)
  local n, s, z, bytes = 0, 0, 0, -1
  local example = nil
  for _, t in ipairs(threads) do
    bytes = math.max(bytes, t:get("body_bytes"))
    n = n + t:get("responses")
    s = s + t:get("bad_status")
    z = z + t:get("bad_size")
    example = example or t:get("first_bad")
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f " ..
    "max_us=%.1f responses=%d bad_status=%d bad_size=%d errors=%d body_bytes=%d\n",
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, n, s, z, errors, bytes))
  if example then io.write("BENCH_FIRST_BAD " .. example .. "\n") end
end

return bench
