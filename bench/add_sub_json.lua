-- wrk: POST add_sub inference, JSON tensors in and out (FP32 [4] + [4]).
--   wrk -t1 -c1 -d10s --latency -s bench/add_sub_json.lua http://HOST:PORT/v2/models/add_sub/infer [-- BYTES]
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

bench.post('{"inputs":[' ..
  '{"name":"INPUT0","shape":[4],"datatype":"FP32","data":[1,2,3,4]},' ..
  '{"name":"INPUT1","shape":[4],"datatype":"FP32","data":[10,20,30,40]}]}')
