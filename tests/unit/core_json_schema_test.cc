#include <catch2/catch.hpp>

#include "core/json_schema.h"

namespace json = boost::json;
using warden::ValidateJson;

namespace {
const json::object kSchema = json::parse(R"({
  "type": "object",
  "properties": {
    "repo": {"type": "string", "enum": ["demo", "infra"]},
    "paths": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 2},
    "max_count": {"type": "integer", "minimum": 1, "maximum": 1000},
    "staged": {"type": "boolean"}
  },
  "required": ["repo"],
  "additionalProperties": false
})").as_object();

std::string Check(const char* args) {
  warden::Status s = ValidateJson(json::parse(args), kSchema);
  return s.ok() ? "ok" : s.message();
}
}  // namespace

TEST_CASE("valid arguments pass") {
  CHECK(Check(R"({"repo":"demo","paths":["a","b"],"max_count":5,"staged":true})") == "ok");
  CHECK(Check(R"({"repo":"demo","max_count":5.0})") == "ok");
}

TEST_CASE("each violation names its path") {
  CHECK(Check(R"({})") == "arguments: missing required property \"repo\"");
  CHECK(Check(R"({"repo":"other"})") == "arguments.repo: must be one of \"demo\", \"infra\"");
  CHECK(Check(R"({"repo":"demo","extra":1})") == "arguments: unknown property \"extra\"");
  CHECK(Check(R"({"repo":"demo","paths":["a",3]})") == "arguments.paths[1]: must be of type string");
  CHECK(Check(R"({"repo":"demo","paths":["a","b","c"]})") == "arguments.paths: allows at most 2 items");
  CHECK(Check(R"({"repo":"demo","paths":[""]})") == "arguments.paths[0]: must be at least 1 characters");
  CHECK(Check(R"({"repo":"demo","max_count":0})") == "arguments.max_count: must be >= 1");
  CHECK(Check(R"({"repo":"demo","max_count":1.5})") == "arguments.max_count: must be of type integer");
  CHECK(Check(R"({"repo":"demo","staged":"yes"})") == "arguments.staged: must be of type boolean");
  CHECK(Check(R"([1])") == "arguments: must be of type object");
}

TEST_CASE("an unsupported schema keyword fails loudly") {
  json::object schema = json::parse(R"({"type":"string","pattern":"^a"})").as_object();
  warden::Status s = ValidateJson(json::value("abc"), schema);
  CHECK(s.code() == warden::Code::kInternal);
}
