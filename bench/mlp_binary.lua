-- wrk: POST mlp_classifier inference at batch 1 with the binary tensor
-- extension both ways (FP32 [1,16] in, [1,10] out).
--   wrk -t1 -c1 -d10s --latency -s bench/mlp_binary.lua http://HOST:PORT/v2/models/mlp_classifier/infer [-- BYTES]
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

local values = {}
for i = 1, 16 do values[i] = (i - 8) * 0.125 end
local header = '{"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32",' ..
  '"parameters":{"binary_data_size":64}}],' ..
  '"outputs":[{"name":"probabilities","parameters":{"binary_data":true}}]}'

bench.post(header .. bench.pack_f32(values), {
  ["Content-Type"] = "application/octet-stream",
  ["Inference-Header-Content-Length"] = tostring(#header),
})
