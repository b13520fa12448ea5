-- wrk: POST mlp_classifier inference at batch 1, JSON tensors in and out
-- (FP32 [1,16] -> probabilities [1,10]).
--   wrk -t1 -c1 -d10s --latency -s bench/mlp_json.lua http://HOST:PORT/v2/models/mlp_classifier/infer [-- BYTES]
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

local values = {}
for i = 1, 16 do values[i] = string.format("%g", (i - 8) * 0.125) end
bench.post('{"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","data":[' ..
  table.concat(values, ",") .. ']}]}')
