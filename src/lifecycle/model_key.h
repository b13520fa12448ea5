// A model's identity in the lifecycle: its name and the key of the
// repository holding it (ModelRepository::key()). Two repositories may each
// hold a model of one name; they are two models.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace mm {

struct ModelKey {
  std::string name;
  std::string repository;
  bool operator==(const ModelKey&) const = default;
};

struct ModelKeyView {
  std::string_view name;
  std::string_view repository;
};

// By name, then repository; lookups by ModelKeyView too.
struct ModelKeyLess {
  using is_transparent = void;
  static ModelKeyView View(const ModelKey& k) { return {k.name, k.repository}; }
  static ModelKeyView View(const ModelKeyView& k) { return k; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    const ModelKeyView x = View(a), y = View(b);
    const int by_name = x.name.compare(y.name);  // one pass over the names
    return by_name != 0 ? by_name < 0 : x.repository < y.repository;
  }
};

// Heterogeneous string hashing, for maps looked up by string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace mm
