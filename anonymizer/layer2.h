// anonymizer/layer2.h: layer 2, the local-LLM span classifier. It runs after
// layer 1 on every tool output (Anonymizer::AnonymizeChecked) and only
// classifies: the model names pieces of text, Warden finds them in the input
// and replaces them itself. The model's text never reaches the agent.
//
// 1. Mask: the text with every layer-1 span replaced by its placeholder
//    ([PASSWORD_REDACTED]; identifiers by their category, [IP], [EMAIL]). No
//    secret layer 1 found goes to the model, and "covers a placeholder" is checkable.
// 2. Chunk: the masked text in chunks of `chunk_bytes` cut at line ends,
//    consecutive chunks sharing `overlap_bytes`; never cut inside a placeholder
//    or a UTF-8 character. Chunks run in parallel (the client bounds them).
// 3. Ask (D1): a fixed system prompt (compiled in, or a file pinned by its
//    SHA-256) and the chunk inside <UNTRUSTED_DATA boundary="random">; the
//    answer must be JSON {"spans":[{"text","category"}]} (a JSON schema in the request).
// 4. Map: each span's text is searched in its chunk. Dropped (and counted) when
//    shorter than `min_span_bytes`, not in the chunk, covering a placeholder at
//    each of its places, or when its occurrences in the whole text would cover more
//    than `max_redact_share` of it. A kept span is replaced at every occurrence.
// 5. Cache: parsed answers by the SHA-256 of the chunk, for the session.
// 6. D5: an answer with "ignore/override instructions" phrases, an answer size
//    far above the baseline, or more than `max_dropped_spans` dropped spans in
//    one call opens the client's circuit breaker.
// A chunk whose request fails (no connection, HTTP error, timeout, malformed or
// empty answer), or an open breaker, makes layer 2 unavailable for the call:
// `on_unavailable: block` fails it (nothing leaves), `regex_only` lets layer 1's
// output go and says so in the report.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "anonymizer/anonymizer.h"
#include "anonymizer/llm_client.h"
#include "core/config.h"

namespace warden::anonymizer {

// The compiled-in system prompt of layer 2.
extern const char* const kLayer2SystemPrompt;

// UntrustedData puts `data` for a local model inside <UNTRUSTED_DATA
// boundary="random">...</UNTRUSTED_DATA boundary="random"> (D1): layer 2's
// chunks and the local_* tools' material.
std::string UntrustedData(std::string_view data);

struct ModelSpan {
  std::string text;
  std::string category;  // one of the schema's enum
};

// Masked: the text layer 2 shows the model, and the way back to the input.
struct Masked {
  std::string text;
  // Placeholders in `text`: [begin, end) in text, and the input span they stand for.
  struct Hole {
    size_t begin, end, input_begin, input_end;
  };
  std::vector<Hole> holes;  // in order
  // InputOffset maps an offset of `text` outside every hole to the input's.
  size_t InputOffset(size_t masked_offset) const;
  // Overlaps is true when [b, e) of `text` touches a hole.
  bool Overlaps(size_t b, size_t e) const;
};
Masked Mask(std::string_view text, const std::vector<Span>& layer1);

// Chunks cuts `text` into [begin, end) ranges (see above).
std::vector<std::pair<size_t, size_t>> Chunks(const Masked& m, size_t chunk_bytes, size_t overlap_bytes);

// The JSON schema of an answer, and its strict reader: anything else
// (unknown keys, wrong types, a category outside the enum, too many spans) is an error.
boost::json::object SpanSchema();
Result<std::vector<ModelSpan>> ParseSpans(std::string_view content);

// InjectionPhrase names the first instruction-like phrase in model output
// ("ignore previous instructions", "you are now", an envelope tag), or "".
std::string InjectionPhrase(std::string_view text);

struct Layer2Options {
  AnonymizerConfig::Layer2 config;
  std::string system_prompt = kLayer2SystemPrompt;
};

// LoadSystemPrompt reads llm.system_prompt_file and checks its SHA-256
// against llm.system_prompt_sha256; the compiled-in prompt when no file is set.
Result<std::string> LoadSystemPrompt(const LlmConfig& config);

class Layer2 : public SecondStage {
 public:
  Layer2(Layer2Options options, std::shared_ptr<LlmClient> client);
  Status Find(std::string_view text, const std::vector<Span>& layer1, std::vector<Span>* out,
              StageReport* report) const override;

  // MapSpans turns the model's spans of chunk [cb, ce) into spans of the input
  // (exposed for tests); drops are counted in `dropped`.
  void MapSpans(std::string_view input, const Masked& m, size_t cb, size_t ce, const std::vector<ModelSpan>& spans,
                std::vector<Span>* out, std::map<std::string, int>* dropped) const;

 private:
  struct Ask;  // one chunk's request
  Status Unavailable(const std::string& why, StageReport* report) const;
  bool CacheGet(const std::string& key, std::vector<ModelSpan>* out) const;
  void CachePut(const std::string& key, const std::vector<ModelSpan>& spans) const;

  Layer2Options options_;
  std::shared_ptr<LlmClient> client_;
  boost::json::object schema_;
  mutable std::mutex cache_mu_;
  mutable std::list<std::pair<std::string, std::vector<ModelSpan>>> lru_;  // GUARDED_BY(cache_mu_), newest first
  mutable std::unordered_map<std::string, decltype(lru_)::iterator> cache_;  // GUARDED_BY(cache_mu_)
};

}  // namespace warden::anonymizer
