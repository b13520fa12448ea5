-- wrk: POST one image (FP32 [1,3,N,N]) to bench/pytorch.sh's resnet18 with
-- Triton's binary tensor extension both ways. The body (JSON header, then the
-- image's bytes) is made by bench/torch_models.py into $BENCH_BODY_FILE;
-- $BENCH_HEADER_LENGTH is the JSON header's length.
--   wrk ... -s bench/resnet18_binary.lua http://HOST:PORT/v2/models/resnet18/infer [-- BYTES]
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
bench.post(body, {
  ["Content-Type"] = "application/octet-stream",
  ["Inference-Header-Content-Length"] = os.getenv("BENCH_HEADER_LENGTH"),
})
