#include "tenancy/tenants.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/memory.h"
#include "repository/repository_key.h"

namespace mm {

namespace {

constexpr size_t kMaxIdBytes = 64;
constexpr size_t kMaxTenants = 10000;

// What a scalar looked like, for messages: cut short and printable.
std::string Shown(const YAML::Node& node) {
  if (!node.IsScalar()) {
    return node.IsSequence() ? "a list" : node.IsMap() ? "a mapping" : "nothing";
  }
  std::string s = node.Scalar().substr(0, 80);
  for (char& c : s) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return "'" + s + "'";
}

class Parser {
 public:
  StatusOr<TenantsConfig> Parse(const YAML::Node& root) {
    if (!root.IsMap()) return Error("the file", "expected a mapping with a 'tenants' list");
    MM_RETURN_IF_ERROR(OnlyKeys(root, "the file", {"tenants"}));
    const YAML::Node list = root["tenants"];
    if (!list || !list.IsSequence() || list.size() == 0) {
      return Error("tenants", "expected a non-empty list of tenants");
    }
    if (list.size() > kMaxTenants) {
      return Error("tenants", std::to_string(list.size()) + " tenants, at most " +
                                  std::to_string(kMaxTenants));
    }
    TenantsConfig config;
    for (size_t i = 0; i < list.size(); ++i) {
      MM_ASSIGN_OR_RETURN(Tenant tenant, ParseTenant(list[i], i));
      config.tenants.push_back(std::move(tenant));
    }
    return config;
  }

 private:
  static Status Error(const std::string& where, const std::string& what) {
    return InvalidArgument("tenants file: " + where + ": " + what);
  }

  static Status OnlyKeys(const YAML::Node& map, const std::string& where,
                         std::initializer_list<std::string_view> known) {
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) return Error(where, "a key that is not a name");
      const std::string& key = kv.first.Scalar();
      bool ok = false;
      for (std::string_view k : known) ok = ok || k == key;
      if (!ok) {
        std::string names;
        for (std::string_view k : known) names += (names.empty() ? "" : ", ") + std::string(k);
        return Error(where, "unknown field " + Shown(kv.first) + " (known: " + names + ")");
      }
    }
    return OkStatus();
  }

  static StatusOr<std::string> String(const YAML::Node& node, const std::string& where) {
    if (!node.IsScalar()) return Error(where, "expected a string, got " + Shown(node));
    return node.Scalar();
  }

  static StatusOr<std::vector<std::string>> Strings(const YAML::Node& node,
                                                    const std::string& where) {
    if (!node.IsSequence()) return Error(where, "expected a list of strings, got " + Shown(node));
    std::vector<std::string> out;
    for (size_t i = 0; i < node.size(); ++i) {
      MM_ASSIGN_OR_RETURN(std::string s, String(node[i], where + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(s));
    }
    return out;
  }

  static StatusOr<double> Number(const YAML::Node& node, const std::string& where, double min,
                                 std::string_view expected) {
    double v = 0;
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      size_t used = 0;
      try {
        v = std::stod(s, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == s.size() && !s.empty() && std::isfinite(v) && v >= min) return v;
    }
    return Error(where, "expected " + std::string(expected) + ", got " + Shown(node));
  }

  static StatusOr<uint64_t> Count(const YAML::Node& node, const std::string& where) {
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      uint64_t v = 0;
      bool ok = !s.empty() && s.size() <= 19;
      for (char c : s) {
        ok = ok && c >= '0' && c <= '9';
        if (ok) v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (ok) return v;
    }
    return Error(where, "expected a whole number >= 0, got " + Shown(node));
  }

  StatusOr<Tenant> ParseTenant(const YAML::Node& node, size_t index) {
    std::string where = "tenants[" + std::to_string(index) + "]";
    if (!node.IsMap()) return Error(where, "expected a mapping, got " + Shown(node));
    MM_RETURN_IF_ERROR(
        OnlyKeys(node, where, {"id", "api_keys", "repositories", "role", "weight", "quotas"}));
    Tenant t;
    if (!node["id"]) return Error(where, "no 'id'");
    MM_ASSIGN_OR_RETURN(t.id, String(node["id"], where + ".id"));
    if (t.id.empty() || t.id.size() > kMaxIdBytes) {
      return Error(where + ".id", "expected 1 to 64 characters, got " + Shown(node["id"]));
    }
    for (char c : t.id) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) {
        return Error(where + ".id",
                     "expected letters, digits, '.', '_' or '-', got " + Shown(node["id"]));
      }
    }
    if (!ids_.insert(t.id).second) return Error(where + ".id", "'" + t.id + "' appears twice");
    where += " (" + t.id + ")";

    if (node["api_keys"]) {
      MM_ASSIGN_OR_RETURN(auto keys, Strings(node["api_keys"], where + ".api_keys"));
      for (size_t i = 0; i < keys.size(); ++i) {
        const std::string at = where + ".api_keys[" + std::to_string(i) + "]";
        auto hash = ParseApiKeyHash(keys[i]);
        if (!hash.ok()) return Error(at, hash.status().message());
        if (!keys_.insert(keys[i]).second) {
          return Error(at, "this key hash is listed twice (each key names one tenant)");
        }
        t.api_keys.push_back(*hash);
      }
    }
    if (t.api_keys.empty()) {
      return Error(where, "no api_keys: a tenant nobody can authenticate as is a mistake");
    }

    if (node["role"]) {
      MM_ASSIGN_OR_RETURN(std::string role, String(node["role"], where + ".role"));
      if (role == "admin") {
        t.role = TenantRole::kAdmin;
      } else if (role != "user") {
        return Error(where + ".role", "expected 'user' or 'admin', got " + Shown(node["role"]));
      }
    }

    if (node["repositories"]) {
      MM_ASSIGN_OR_RETURN(t.repositories, Strings(node["repositories"], where + ".repositories"));
      for (size_t i = 0; i < t.repositories.size(); ++i) {
        const std::string at = where + ".repositories[" + std::to_string(i) + "]";
        const RepositoryLocation location = ParseRepositoryLocation(t.repositories[i]);
        if (t.repositories[i].empty()) return Error(at, "expected a folder, got ''");
        if (location.path.empty()) {
          return Error(at,
                       "expected a folder or a repository URI, got '" + t.repositories[i] + "'");
        }
        // Spellings of one repository that can be told apart without the
        // filesystem (the registry's keys tell the rest, symlinks included).
        std::string normal = location.path;
        if (location.local()) {
          normal = std::filesystem::path(normal).lexically_normal().string();
          if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
        }
        auto [it, fresh] = repositories_.emplace(normal, t.id);
        if (!fresh) {
          return Error(at, "'" + t.repositories[i] + "' is already tenant '" + it->second +
                               "''s (a repository belongs to one tenant)");
        }
      }
    }
    if (t.repositories.empty() && t.role != TenantRole::kAdmin) {
      return Error(where, "no repositories: a user tenant needs at least one");
    }

    if (node["weight"]) {
      MM_ASSIGN_OR_RETURN(t.weight, Number(node["weight"], where + ".weight", 0, "a number > 0"));
      if (t.weight <= 0) {
        return Error(where + ".weight", "expected a number > 0, got " + Shown(node["weight"]));
      }
    }

    if (const YAML::Node q = node["quotas"]) {
      const std::string at = where + ".quotas";
      if (!q.IsMap()) return Error(at, "expected a mapping, got " + Shown(q));
      MM_RETURN_IF_ERROR(OnlyKeys(q, at,
                                  {"max_concurrency", "requests_per_second", "burst",
                                   "max_loaded_models", "memory_bytes"}));
      TenantQuotas& quotas = t.quotas;
      if (q["max_concurrency"]) {
        MM_ASSIGN_OR_RETURN(quotas.max_concurrency,
                            Count(q["max_concurrency"], at + ".max_concurrency"));
      }
      if (q["requests_per_second"]) {
        MM_ASSIGN_OR_RETURN(
            quotas.requests_per_second,
            Number(q["requests_per_second"], at + ".requests_per_second", 0, "a number >= 0"));
      }
      if (q["burst"]) {
        if (quotas.requests_per_second <= 0) {
          return Error(at + ".burst", "a burst without requests_per_second");
        }
        MM_ASSIGN_OR_RETURN(quotas.burst, Number(q["burst"], at + ".burst", 1, "a number >= 1"));
      } else if (quotas.requests_per_second > 0) {
        quotas.burst = std::max(1.0, quotas.requests_per_second);
      }
      if (q["max_loaded_models"]) {
        MM_ASSIGN_OR_RETURN(quotas.max_loaded_models,
                            Count(q["max_loaded_models"], at + ".max_loaded_models"));
      }
      if (q["memory_bytes"]) {
        MM_ASSIGN_OR_RETURN(std::string text, String(q["memory_bytes"], at + ".memory_bytes"));
        auto bytes = ParseByteSize(text, 0);
        if (!bytes.ok()) return Error(at + ".memory_bytes", bytes.status().message());
        quotas.memory_bytes = *bytes;
      }
    }
    return t;
  }

  std::set<std::string> ids_;
  std::set<std::string> keys_;
  std::map<std::string, std::string> repositories_;  // normalized path or URI -> tenant id
};

}  // namespace

StatusOr<TenantsConfig> ParseTenants(std::string_view yaml) {
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    return Parser().Parse(root);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("tenants file: not valid YAML at line " +
                           std::to_string(e.mark.line + 1) + ", column " +
                           std::to_string(e.mark.column + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("tenants file: ") + e.what());
  }
}

StatusOr<TenantsConfig> LoadTenantsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("--tenants " + path + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  auto config = ParseTenants(text.str());
  if (!config.ok()) return config.status().WithContext(path);
  return config;
}

}  // namespace mm
