-- wrk: POST one ~4 MiB image (FP32 [1,3,512,683]) to image_cnn with Triton's
-- binary tensor extension, the output asked for as binary. The body (JSON
-- header then raw floats) is made by bench/isolation.sh into the file
-- $BENCH_BODY_FILE; $BENCH_HEADER_LENGTH is the JSON header's length.
--   wrk ... -s bench/image_4mib_binary.lua http://HOST:PORT/v2/models/image_cnn/infer [-- BYTES]
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
bench.post(body, {
  ["Content-Type"] = "application/octet-stream",
  ["Inference-Header-Content-Length"] = os.getenv("BENCH_HEADER_LENGTH"),
})
