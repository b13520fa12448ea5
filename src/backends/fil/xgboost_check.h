// Checks of an XGBoost model file before XGBoost parses it (XGBoost's
// loaders trust the file). For UBJSON, a bounds check: XGBoost 3.2's
// reader (UBJReader) trusts the lengths it reads and copies past the end of
// its buffer when a file lies about one (found by flipping bytes under ASan).
// Private to src/backends/fil/.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace mm::fil {

// What the checks saw: the caller compares it with what XGBoost loaded (the
// same trees; every split feature below XGBoost's num_feature, which the
// file states after the trees) and sizes the model from it.
struct XGBoostShape {
  uint64_t trees = 0;
  uint64_t nodes = 0;
  int32_t max_split_feature = -1;  // over every split node
};

// OK when `data` holds one UBJSON value, in the subset XGBoost writes ('{' and
// '[' containers, optionally typed and counted with '$' and '#'; strings 'S';
// integers i U I l L; floats d D; T F Z), every length and count inside the
// buffer and nesting at most 64 deep. Anything else is INVALID_ARGUMENT
// naming the offset.
Status CheckUbjson(std::string_view data, XGBoostShape* shape);

// The same checks of each tree for a JSON model (simdjson), before XGBoost
// parses it: each tree's arrays of num_nodes entries, children and parents in
// range, no key twice, no categorical splits yet.
Status CheckXGBoostJson(std::string_view data, XGBoostShape* shape);

}  // namespace mm::fil
