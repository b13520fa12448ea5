-- wrk: POST bench/fil.sh's XGBoost request (FP32 [B, 30] rows as input__0)
-- with Triton's binary tensor extension both ways. The body (JSON header,
-- then the rows' bytes) is made by bench/fil_models.py into $BENCH_BODY_FILE;
-- $BENCH_HEADER_LENGTH is the JSON header's length.
--   wrk ... -s bench/fil_binary.lua http://HOST:PORT/v2/models/xgb_engine/infer [-- BYTES]
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
bench.post(body, {
  ["Content-Type"] = "application/octet-stream",
  ["Inference-Header-Content-Length"] = os.getenv("BENCH_HEADER_LENGTH"),
})
