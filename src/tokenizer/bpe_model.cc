#include "bpe_model.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <queue>

#include "absl/strings/str_cat.h"
#include "byte_level.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer {

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    std::vector<std::string> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
    BpeOptions options) {
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  model->options_ = std::move(options);
  model->vocab_ = std::move(vocab);
  TANDEM_RETURN_IF_ERROR(model->Init());
  model->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    TokenId ia = model->TokenToId(a), ib = model->TokenToId(b), im = model->TokenToId(a + b);
    if (ia < 0 || ib < 0 || im < 0) {
      return absl::InvalidArgumentError(absl::StrCat("merge ", rank, " ('", a, "' '", b,
                                                     "') uses a token that is not in the vocabulary"));
    }
    model->merges_.try_emplace(PairKey(ia, ib), Merge{static_cast<int32_t>(rank), im});
  }
  return model;
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::CreateFromScores(std::vector<std::string> vocab,
                                                                     const std::vector<float>& scores,
                                                                     BpeOptions options) {
  if (scores.size() != vocab.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected one score per token (", vocab.size(), "), found ", scores.size()));
  }
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  model->options_ = std::move(options);
  model->vocab_ = std::move(vocab);
  TANDEM_RETURN_IF_ERROR(model->Init());
  // Every way of writing a token as the concatenation of two tokens is a merge; a higher score is a
  // lower rank, so the heap picks the highest-scoring pair first and the leftmost among equals.
  std::vector<TokenId> order(model->vocab_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<TokenId>(i);
  std::stable_sort(order.begin(), order.end(), [&](TokenId x, TokenId y) { return scores[x] > scores[y]; });
  std::vector<int32_t> rank_of(order.size());
  int32_t rank = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0 && scores[order[i]] != scores[order[i - 1]]) ++rank;
    rank_of[order[i]] = rank;
  }
  for (size_t id = 0; id < model->vocab_.size(); ++id) {
    const std::string& t = model->vocab_[id];
    for (size_t cut = 1; cut < t.size(); ++cut) {
      if ((static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) continue;
      TokenId a = model->TokenToId(std::string_view(t).substr(0, cut));
      TokenId b = model->TokenToId(std::string_view(t).substr(cut));
      if (a < 0 || b < 0) continue;
      model->merges_.try_emplace(PairKey(a, b), Merge{rank_of[id], static_cast<TokenId>(id)});
    }
  }
  return model;
}

absl::Status BpeModel::Init() {
  token_to_id_.reserve(vocab_.size());
  for (size_t id = 0; id < vocab_.size(); ++id) {
    if (vocab_[id].empty()) continue;
    token_to_id_.try_emplace(vocab_[id], static_cast<TokenId>(id));
  }
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  std::fill(std::begin(byte_fallback_ids_), std::end(byte_fallback_ids_), -1);
  if (options_.byte_level) {
    for (size_t id = 0; id < vocab_.size(); ++id) {
      auto bytes = ByteLevelToBytes(vocab_[id]);
      if (bytes && !bytes->empty()) bytes_to_id_.try_emplace(*bytes, static_cast<TokenId>(id));
    }
    for (int b = 0; b < 256; ++b) byte_ids_[b] = TokenToId(ByteToChars(static_cast<unsigned char>(b)));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_fallback_ids_[b] = TokenToId(name);
  }
  if (!options_.unk_token.empty()) {
    unk_id_ = TokenToId(options_.unk_token);
    if (unk_id_ < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unk_token '", options_.unk_token, "' is not in the vocabulary"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model, bool byte_level) {
  if (model.value("type", "BPE") != "BPE") {
    return absl::UnimplementedError(absl::StrCat("unsupported model type '", model.value("type", ""),
                                                 "' (supported: BPE)"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
      return absl::UnimplementedError(absl::StrCat("BPE ", key, " '", model[key].get<std::string>(),
                                                   "' is not supported"));
    }
  }
  std::vector<std::string> vocab;
  for (const auto& [token, id_json] : model.at("vocab").items()) {
    int64_t id = id_json.get<int64_t>();
    if (id < 0 || id > INT32_MAX) return absl::InvalidArgumentError(absl::StrCat("bad token id ", id));
    if (static_cast<size_t>(id) >= vocab.size()) vocab.resize(id + 1);
    vocab[id] = token;
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(model.at("merges").size());
  for (const auto& m : model.at("merges")) {
    if (m.is_array() && m.size() == 2) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ', 1);
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("merge '", s, "' is not two tokens separated by a space"));
      }
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("expected a merge string or pair, found ", m.dump()));
    }
  }
  BpeOptions options;
  options.byte_level = byte_level;
  options.byte_fallback = model.value("byte_fallback", false);
  options.fuse_unk = model.value("fuse_unk", false);
  options.ignore_merges = model.value("ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) options.unk_token = model["unk_token"];
  return Create(std::move(vocab), merges, std::move(options));
}

const std::string& BpeModel::IdToToken(TokenId id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= vocab_.size()) return kEmpty;
  return vocab_[id];
}

TokenId BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(absl::string_view(token.data(), token.size()));
  return it == token_to_id_.end() ? -1 : it->second;
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<TokenId>* ids) const {
  if (options_.byte_level) {
    for (unsigned char b : word) {
      if (byte_ids_[b] >= 0) ids->push_back(byte_ids_[b]);
    }
    return;
  }
  bool pending_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t len = Utf8SequenceLength(word, i);
    if (len == 0) len = 1;
    TokenId id = TokenToId(word.substr(i, len));
    if (id >= 0) {
      if (pending_unk) ids->push_back(unk_id_);
      pending_unk = false;
      ids->push_back(id);
      i += len;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (size_t k = 0; k < len; ++k) all = all && byte_fallback_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
      if (all) {
        if (pending_unk) ids->push_back(unk_id_);
        pending_unk = false;
        for (size_t k = 0; k < len; ++k) ids->push_back(byte_fallback_ids_[static_cast<unsigned char>(word[i + k])]);
        i += len;
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk && !options_.fuse_unk) ids->push_back(unk_id_);
      pending_unk = true;
    }
    i += len;
  }
  if (pending_unk) ids->push_back(unk_id_);
}

// Repeatedly merges the lowest-ranked adjacent pair (leftmost among equals). Quadratic, but fastest
// for the short words that make up almost all text.
void BpeModel::MergeSmall(std::vector<TokenId>* ids) const {
  auto& v = *ids;
  while (v.size() > 1) {
    int32_t best_rank = INT32_MAX;
    size_t best_pos = 0;
    TokenId best_id = -1;
    for (size_t i = 0; i + 1 < v.size(); ++i) {
      const Merge* m = FindMerge(v[i], v[i + 1]);
      if (m != nullptr && m->rank < best_rank) {
        best_rank = m->rank;
        best_pos = i;
        best_id = m->new_id;
      }
    }
    if (best_id < 0) break;
    v[best_pos] = best_id;
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
}

// The same result in O(n log n): a heap of candidate merges over a doubly linked list of symbols;
// stale candidates are skipped when popped.
void BpeModel::MergeLarge(std::vector<TokenId>* ids) const {
  auto& v = *ids;
  const int n = static_cast<int>(v.size());
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    TokenId new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  for (int i = 0; i + 1 < n; ++i) {
    if (const Merge* m = FindMerge(v[i], v[i + 1])) heap.push({m->rank, i, m->new_id});
  }
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    if (!alive[c.pos] || next[c.pos] < 0) continue;
    int right = next[c.pos];
    const Merge* m = FindMerge(v[c.pos], v[right]);
    if (m == nullptr || m->new_id != c.new_id || m->rank != c.rank) continue;
    v[c.pos] = c.new_id;
    alive[right] = false;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    if (prev[c.pos] >= 0) {
      if (const Merge* pm = FindMerge(v[prev[c.pos]], v[c.pos])) heap.push({pm->rank, prev[c.pos], pm->new_id});
    }
    if (next[c.pos] >= 0) {
      if (const Merge* nm = FindMerge(v[c.pos], v[next[c.pos]])) heap.push({nm->rank, c.pos, nm->new_id});
    }
  }
  std::vector<TokenId> out;
  for (int i = 0; i >= 0 && i < n; i = next[i]) out.push_back(v[i]);
  v = std::move(out);
}

void BpeModel::Tokenize(std::string_view word, std::vector<TokenId>* out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    TokenId whole = -1;
    if (options_.byte_level) {
      auto it = bytes_to_id_.find(absl::string_view(word.data(), word.size()));
      if (it != bytes_to_id_.end()) whole = it->second;
    } else {
      whole = TokenToId(word);
    }
    if (whole >= 0) {
      out->push_back(whole);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<TokenId> ids;
  ids.reserve(word.size());
  InitialSymbols(word, &ids);
  if (ids.size() <= 32) {
    MergeSmall(&ids);
  } else {
    MergeLarge(&ids);
  }
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kMaxCacheEntries) cache_.try_emplace(std::string(word), std::move(ids));
  }
}

}  // namespace tandem::tokenizer
