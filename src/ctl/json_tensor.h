// Inline JSON tensors for `ctl infer --input NAME=[[1,2],[3,4]]`: the shape
// is read from the nesting of the arrays; the datatype comes from the model's
// metadata, since JSON numbers do not carry one.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mm {

// The shape of `value`, a rectangular nest of arrays whose leaves are all at
// the same depth and are numbers, booleans or strings ([[1,2,3]] -> [1, 3];
// [] -> [0]). INVALID_ARGUMENT, prefixed with `what`, for a value that is not
// an array, a ragged nest (sibling arrays of different lengths or depths), or
// a leaf that is null or an object.
StatusOr<std::vector<int64_t>> NestedShape(simdjson::dom::element value, std::string_view what);

struct JsonTensor {
  std::vector<int64_t> shape;
  std::string data;  // the value, minified: the request's "data"
};

// Parses `text` as JSON and takes its shape (NestedShape).
StatusOr<JsonTensor> ParseJsonTensor(std::string_view text, std::string_view what);

}  // namespace mm
