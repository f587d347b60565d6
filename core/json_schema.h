// core/json_schema.h: a validator for the subset of JSON Schema that Warden's
// tools declare (type, properties, required, additionalProperties, enum,
// minLength/maxLength, minimum/maximum, items, minItems/maxItems).
//
// Tool arguments are checked against the tool's inputSchema before the tool
// runs, and tests check structuredContent against outputSchema. A schema using
// a keyword outside the subset is a programming error and fails validation
// loudly rather than passing silently.
#pragma once

#include <boost/json.hpp>

#include "core/result.h"

namespace warden {

// Validate returns OK, or InvalidArgument naming the first offending path
// ("arguments.paths[1]: must be a string").
Status ValidateJson(const boost::json::value& value, const boost::json::object& schema,
                    const std::string& path = "arguments");

}  // namespace warden
