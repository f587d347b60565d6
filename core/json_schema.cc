#include "core/json_schema.h"

#include <set>

namespace warden {
namespace json = boost::json;

namespace {

bool HasType(const json::value& v, std::string_view t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_bool();
  if (t == "null") return v.is_null();
  if (t == "integer") {
    if (v.is_int64() || v.is_uint64()) return true;
    if (v.is_double()) {
      double d = v.get_double();
      return d == static_cast<double>(static_cast<int64_t>(d));
    }
    return false;
  }
  if (t == "number") return v.is_number();
  return false;
}

double AsDouble(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return v.get_double();
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

const std::set<std::string_view> kKnown = {"type",      "properties", "required",  "additionalProperties",
                                           "enum",      "minLength",  "maxLength", "minimum",
                                           "maximum",   "items",      "minItems",  "maxItems",
                                           "description", "default",  "title",     "$schema",
                                           "examples"};

}  // namespace

Status ValidateJson(const json::value& v, const json::object& schema, const std::string& path) {
  for (const auto& kv : schema)
    if (!kKnown.count(kv.key())) return Internal("schema keyword not supported: " + std::string(kv.key()));

  if (auto* t = schema.if_contains("type")) {
    bool ok = false;
    std::string names;
    if (t->is_string()) {
      ok = HasType(v, t->get_string());
      names = t->get_string();
    } else if (t->is_array()) {
      for (const auto& x : t->get_array()) {
        ok = ok || HasType(v, x.as_string());
        names += (names.empty() ? "" : " or ") + std::string(x.as_string());
      }
    }
    if (!ok) return InvalidArgument(path + ": must be " + (names.empty() ? "valid" : "of type " + names));
  }
  if (auto* e = schema.if_contains("enum")) {
    bool found = false;
    std::string list;
    for (const auto& x : e->as_array()) {
      found = found || x == v;
      list += (list.empty() ? "" : ", ") + json::serialize(x);
    }
    if (!found) return InvalidArgument(path + ": must be one of " + list);
  }
  if (v.is_string()) {
    size_t n = Utf8Length(v.get_string());
    if (auto* m = schema.if_contains("minLength"); m && n < m->to_number<uint64_t>())
      return InvalidArgument(path + ": must be at least " + std::to_string(m->to_number<uint64_t>()) +
                             " characters");
    if (auto* m = schema.if_contains("maxLength"); m && n > m->to_number<uint64_t>())
      return InvalidArgument(path + ": must be at most " + std::to_string(m->to_number<uint64_t>()) +
                             " characters");
  }
  if (v.is_number()) {
    double d = AsDouble(v);
    if (auto* m = schema.if_contains("minimum"); m && d < AsDouble(*m))
      return InvalidArgument(path + ": must be >= " + json::serialize(*m));
    if (auto* m = schema.if_contains("maximum"); m && d > AsDouble(*m))
      return InvalidArgument(path + ": must be <= " + json::serialize(*m));
  }
  if (v.is_array()) {
    const auto& a = v.get_array();
    if (auto* m = schema.if_contains("minItems"); m && a.size() < m->to_number<uint64_t>())
      return InvalidArgument(path + ": needs at least " + std::to_string(m->to_number<uint64_t>()) + " items");
    if (auto* m = schema.if_contains("maxItems"); m && a.size() > m->to_number<uint64_t>())
      return InvalidArgument(path + ": allows at most " + std::to_string(m->to_number<uint64_t>()) + " items");
    if (auto* items = schema.if_contains("items")) {
      for (size_t i = 0; i < a.size(); ++i) {
        Status s = ValidateJson(a[i], items->as_object(), path + "[" + std::to_string(i) + "]");
        if (!s.ok()) return s;
      }
    }
  }
  if (v.is_object()) {
    const auto& o = v.get_object();
    const json::object* props = nullptr;
    if (auto* p = schema.if_contains("properties")) props = &p->as_object();
    if (auto* req = schema.if_contains("required")) {
      for (const auto& r : req->as_array())
        if (!o.contains(r.as_string()))
          return InvalidArgument(path + ": missing required property \"" + std::string(r.as_string()) + "\"");
    }
    bool additional = true;
    if (auto* a = schema.if_contains("additionalProperties")) additional = a->as_bool();
    for (const auto& kv : o) {
      std::string sub = path + "." + std::string(kv.key());
      const json::value* ps = props ? props->if_contains(kv.key()) : nullptr;
      if (!ps) {
        if (!additional) return InvalidArgument(path + ": unknown property \"" + std::string(kv.key()) + "\"");
        continue;
      }
      Status s = ValidateJson(kv.value(), ps->as_object(), sub);
      if (!s.ok()) return s;
    }
  }
  return Status::Ok();
}

}  // namespace warden
