// anonymizer/iac.h: infrastructure-as-code awareness (seed 000, section 7).
//
// anklume's infra.yml names the domains, their machines and their bridges
// (net-<domain>); every such name is an identifier wherever it appears. The
// operator's own dictionary adds terms (customer names, project codes).
// Trust: infra.yml is operator input; it is parsed defensively all the same.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anonymizer/anonymizer.h"
#include "core/result.h"

namespace warden::anonymizer {

// InfraNames reads an anklume infra.yml: category -> names ("instance" for
// machines, "network" for net-<domain> bridges, "project" for domain
// descriptions and the project name).
Result<std::map<std::string, std::vector<std::string>>> InfraNames(const std::string& path);

// DictionarySource reports every whole-word occurrence of the given terms.
std::unique_ptr<SpanSource> MakeDictionarySource(const std::map<std::string, std::vector<std::string>>& terms);

}  // namespace warden::anonymizer
