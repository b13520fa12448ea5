-- wrk: POST sklearn_iris inference (examples/models, a Python model), one row
-- of FP32 [1, 4] in JSON; its LABEL and PROBABILITIES come back in JSON.
--   wrk -t1 -c1 -d10s --latency -s bench/sklearn_iris_json.lua http://HOST:PORT/v2/models/sklearn_iris/infer
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

bench.post('{"inputs":[{"name":"INPUT","shape":[1,4],"datatype":"FP32","data":[5.9,3.0,4.2,1.5]}]}')
