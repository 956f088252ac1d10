#include "tandem/frontend/openai_response.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tandem::frontend {
namespace {

using nlohmann::json;

json FinishJson(FinishReason reason) {
  if (reason == FinishReason::kNone) return nullptr;
  return FinishReasonName(reason);
}

json Bytes(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

std::string Sse(const json& payload) {
  return absl::StrCat("data: ", DumpJson(payload), "\n\n");
}

}  // namespace

ResponseBuilder::ResponseBuilder(const PreparedRequest& prepared)
    : prepared_(prepared),
      chat_(prepared.request.kind == ApiKind::kChat),
      n_(prepared.request.params.n),
      num_subs_(prepared.subs.size()),
      choices_(prepared.subs.size() * static_cast<size_t>(prepared.request.params.n)),
      sub_final_(prepared.subs.size(), false) {
  if (prepared.request.echo) {
    for (size_t s = 0; s < num_subs_; ++s) {
      for (int32_t i = 0; i < n_; ++i) {
        ChoiceState& c = choices_[s * n_ + i];
        c.text = prepared.prompt_texts[s];
        c.text_offset = static_cast<int64_t>(c.text.size());
      }
    }
  }
}

json ResponseBuilder::ChunkBase() const {
  json chunk = {{"id", prepared_.id},
                {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
                {"created", prepared_.created},
                {"model", prepared_.request.model}};
  if (prepared_.request.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json ResponseBuilder::UsageJson() const {
  json usage = {{"prompt_tokens", usage_.prompt_tokens},
                {"completion_tokens", usage_.completion_tokens},
                {"total_tokens", usage_.prompt_tokens + usage_.completion_tokens}};
  if (usage_.cached_prompt_tokens > 0)
    usage["prompt_tokens_details"] = {{"cached_tokens", usage_.cached_prompt_tokens}};
  return usage;
}

json ResponseBuilder::ChatLogprobs(const std::vector<TokenLogprob>& logprobs) const {
  json content = json::array();
  for (const TokenLogprob& lp : logprobs) {
    json top = json::array();
    for (const TopLogprob& t : lp.top)
      top.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", Bytes(t.token)}});
    content.push_back({{"token", lp.token},
                       {"logprob", lp.logprob},
                       {"bytes", Bytes(lp.token)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

json ResponseBuilder::CompletionLogprobs(const std::vector<TokenLogprob>& logprobs,
                                         const std::vector<int64_t>& offsets) const {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array();
  for (const TokenLogprob& lp : logprobs) {
    tokens.push_back(lp.token);
    token_logprobs.push_back(lp.logprob);
    json top = json::object();
    for (const TopLogprob& t : lp.top) top[t.token] = t.logprob;
    top_logprobs.push_back(std::move(top));
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top_logprobs)},
          {"text_offset", offsets}};
}

std::string ResponseBuilder::StreamBegin() const {
  std::string out;
  for (size_t i = 0; i < choices_.size(); ++i) {
    json chunk = ChunkBase();
    if (chat_) {
      chunk["choices"] = json::array({{{"index", i},
                                       {"delta", {{"role", "assistant"}, {"content", ""}}},
                                       {"logprobs", nullptr},
                                       {"finish_reason", nullptr}}});
    } else if (prepared_.request.echo) {
      chunk["choices"] = json::array(
          {{{"index", i}, {"text", choices_[i].text}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
    } else {
      continue;
    }
    out += Sse(chunk);
  }
  return out;
}

std::string ResponseBuilder::StreamDelta(int32_t index, const ChoiceDelta& delta,
                                         const std::vector<int64_t>& offsets) const {
  const bool want_logprobs = prepared_.request.params.logprobs.has_value();
  json choice = {{"index", index}, {"finish_reason", FinishJson(delta.finish_reason)}};
  if (chat_) {
    choice["delta"] =
        delta.text.empty() && delta.token_ids.empty() ? json::object() : json{{"content", delta.text}};
    choice["logprobs"] =
        want_logprobs && !delta.logprobs.empty() ? ChatLogprobs(delta.logprobs) : json(nullptr);
  } else {
    choice["text"] = delta.text;
    choice["logprobs"] = want_logprobs && !delta.logprobs.empty()
                             ? CompletionLogprobs(delta.logprobs, offsets)
                             : json(nullptr);
  }
  json chunk = ChunkBase();
  chunk["choices"] = json::array({std::move(choice)});
  return Sse(chunk);
}

std::string ResponseBuilder::OnEvent(size_t sub, const GenerateEvent& event) {
  std::string out;
  if (done() || sub >= num_subs_ || sub_final_[sub]) return out;
  if (!event.status.ok()) {
    error_ = FromStatus(event.status);
    if (prepared_.request.stream) {
      out += Sse(error_->ToJson());
      out += "data: [DONE]\n\n";
    }
    return out;
  }
  for (const ChoiceDelta& delta : event.choices) {
    if (delta.index < 0 || delta.index >= n_) continue;
    const int32_t index = static_cast<int32_t>(sub) * n_ + delta.index;
    ChoiceState& c = choices_[index];
    std::vector<int64_t> offsets;
    int64_t offset = static_cast<int64_t>(c.text.size());
    for (const TokenLogprob& lp : delta.logprobs) {
      offsets.push_back(offset);
      offset += static_cast<int64_t>(lp.token.size());
    }
    c.text += delta.text;
    c.token_ids.insert(c.token_ids.end(), delta.token_ids.begin(), delta.token_ids.end());
    c.logprobs.insert(c.logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
    c.offsets.insert(c.offsets.end(), offsets.begin(), offsets.end());
    if (delta.finish_reason != FinishReason::kNone) c.finish_reason = delta.finish_reason;
    if (prepared_.request.stream) out += StreamDelta(index, delta, offsets);
  }
  if (event.final) {
    sub_final_[sub] = true;
    ++finished_subs_;
    usage_.prompt_tokens += event.usage.prompt_tokens;
    usage_.completion_tokens += event.usage.completion_tokens;
    usage_.cached_prompt_tokens += event.usage.cached_prompt_tokens;
    if (prepared_.request.stream && finished_subs_ == num_subs_) {
      if (prepared_.request.include_usage) {
        json chunk = ChunkBase();
        chunk["choices"] = json::array();
        chunk["usage"] = UsageJson();
        out += Sse(chunk);
      }
      out += "data: [DONE]\n\n";
    }
  }
  return out;
}

HttpReply ResponseBuilder::FinalReply() const {
  if (error_) return HttpReply{error_->http_status, "application/json", error_->Body()};
  const bool want_logprobs = prepared_.request.params.logprobs.has_value();
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const ChoiceState& c = choices_[i];
    json choice = {{"index", i}, {"finish_reason", FinishJson(c.finish_reason)}};
    if (chat_) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
      choice["logprobs"] = want_logprobs ? ChatLogprobs(c.logprobs) : json(nullptr);
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = want_logprobs ? CompletionLogprobs(c.logprobs, c.offsets) : json(nullptr);
    }
    choices.push_back(std::move(choice));
  }
  json body = {{"id", prepared_.id},
               {"object", chat_ ? "chat.completion" : "text_completion"},
               {"created", prepared_.created},
               {"model", prepared_.request.model},
               {"choices", std::move(choices)},
               {"usage", UsageJson()}};
  return HttpReply{200, "application/json", DumpJson(body)};
}

}  // namespace tandem::frontend
