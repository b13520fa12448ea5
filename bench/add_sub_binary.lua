-- wrk: POST add_sub inference with Triton's binary tensor extension both ways:
-- a JSON header of Inference-Header-Content-Length bytes, then the raw FP32
-- tensors; the outputs are asked for as binary too.
--   wrk -t1 -c1 -d10s --latency -s bench/add_sub_binary.lua http://HOST:PORT/v2/models/add_sub/infer [-- BYTES]
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

local header = '{"inputs":[' ..
  '{"name":"INPUT0","shape":[4],"datatype":"FP32","parameters":{"binary_data_size":16}},' ..
  '{"name":"INPUT1","shape":[4],"datatype":"FP32","parameters":{"binary_data_size":16}}],' ..
  '"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}},' ..
  '{"name":"OUTPUT1","parameters":{"binary_data":true}}]}'
local data = bench.pack_f32({1, 2, 3, 4}) .. bench.pack_f32({10, 20, 30, 40})

bench.post(header .. data, {
  ["Content-Type"] = "application/octet-stream",
  ["Inference-Header-Content-Length"] = tostring(#header),
})
