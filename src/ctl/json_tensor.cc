#include "ctl/json_tensor.h"

namespace mm {

namespace {

namespace dom = simdjson::dom;
using dom::element_type;

// Checks that every array at depth d has shape[d] elements and that leaves
// sit at depth shape.size() exactly.
bool Rectangular(dom::element e, const std::vector<int64_t>& shape, size_t depth,
                 std::string& why) {
  if (depth == shape.size()) {
    switch (e.type()) {
      case element_type::ARRAY:
        why = "ragged (an array sits where its siblings hold values)";
        return false;
      case element_type::OBJECT:
        why = "holds an object; expected numbers, booleans or strings";
        return false;
      case element_type::NULL_VALUE:
        why = "holds null; expected numbers, booleans or strings";
        return false;
      default:
        return true;
    }
  }
  dom::array a;
  if (e.get_array().get(a)) {
    why = "ragged (a value sits where its siblings hold arrays)";
    return false;
  }
  if (static_cast<int64_t>(a.size()) != shape[depth]) {
    why = "ragged (sibling arrays differ in length: " + std::to_string(shape[depth]) + " and " +
          std::to_string(a.size()) + ")";
    return false;
  }
  for (dom::element child : a) {
    if (!Rectangular(child, shape, depth + 1, why)) return false;
  }
  return true;
}

}  // namespace

StatusOr<std::vector<int64_t>> NestedShape(dom::element value, std::string_view what) {
  if (value.type() != element_type::ARRAY) {
    return InvalidArgument(std::string(what) + ": expected a JSON array such as [[1,2,3]]");
  }
  // The shape along the first elements, then a check of the whole nest.
  std::vector<int64_t> shape;
  dom::element e = value;
  dom::array a;
  while (!e.get_array().get(a)) {
    shape.push_back(static_cast<int64_t>(a.size()));
    if (a.size() == 0) break;
    e = a.at(0).value_unsafe();
  }
  std::string why;
  if (!Rectangular(value, shape, 0, why)) {
    return InvalidArgument(std::string(what) + ": the JSON array is " + why);
  }
  return shape;
}

StatusOr<JsonTensor> ParseJsonTensor(std::string_view text, std::string_view what) {
  dom::parser parser;
  dom::element root;
  if (auto err = parser.parse(text.data(), text.size()).get(root)) {
    return InvalidArgument(std::string(what) + ": not valid JSON (" + simdjson::error_message(err) +
                           ")");
  }
  JsonTensor t;
  MM_ASSIGN_OR_RETURN(t.shape, NestedShape(root, what));
  t.data = simdjson::minify(root);
  return t;
}

}  // namespace mm
