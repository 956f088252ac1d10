#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tandem/model/gguf.h"
#include "tandem/model/loader.h"
#include "tandem/model/qk_permute.h"
#include "test_files.h"

namespace tandem::model {
namespace {

using testing::F32Bytes;
using testing::GgufBuilder;
using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::WriteFile;

// convert_hf_to_gguf.py's LlamaModel.permute, written out index by index:
// w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols), so
// out[h][j][a] = in[h][a][j] with out viewed as (n_head, hd/2, 2) and in as (n_head, 2, hd/2).
std::vector<float> ConverterPermute(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t n_head) {
  const int64_t hd = rows / n_head, half = hd / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t c = 0; c < cols; ++c)
          out[static_cast<size_t>(((h * half + j) * 2 + a) * cols + c)] =
              w[static_cast<size_t>(((h * 2 + a) * half + j) * cols + c)];
  return out;
}

TEST(QkPermuteTest, MatchesTheConverterAndRoundTrips) {
  for (auto [rows, cols, heads] : {std::tuple{8, 3, 2}, std::tuple{576, 5, 9}, std::tuple{192, 1, 3}}) {
    std::vector<float> hf = testing::RandomValues(static_cast<size_t>(rows * cols), 42);
    std::vector<float> w = hf;
    PermuteQkRows(w.data(), rows, cols, heads);
    EXPECT_EQ(w, ConverterPermute(hf, rows, cols, heads)) << rows << "x" << cols;
    UnpermuteQkRows(w.data(), rows, cols, heads);
    EXPECT_EQ(w, hf);
  }
  // head_dim 4, one head: HF rows (0, 1, 2, 3) = pairs (0, 2), (1, 3) become GGUF rows 0, 2, 1, 3.
  std::vector<float> w = {0, 1, 2, 3};
  PermuteQkRows(w.data(), 4, 1, 1);
  EXPECT_EQ(w, std::vector<float>({0, 2, 1, 3}));
}

// A tiny llama GGUF: hidden 8, 2 heads of 4, 1 kv head, inter 12, vocab 5, 1 layer; all F32 except
// the embedding in F16. Q/K stored permuted as llama.cpp's converter writes them.
struct TinyGguf {
  std::map<std::string, std::vector<float>> hf;  // HF layout values by gguf name
  std::string bytes;
};

TinyGguf BuildTinyGguf(bool tied, bool with_extra = false) {
  TinyGguf t;
  GgufBuilder g;
  g.Str("general.architecture", "llama");
  g.Str("general.name", "tiny");
  g.U32("general.alignment", 32);
  g.U32("llama.block_count", 1);
  g.U32("llama.embedding_length", 8);
  g.U32("llama.feed_forward_length", 12);
  g.U32("llama.attention.head_count", 2);
  g.U32("llama.attention.head_count_kv", 1);
  g.U32("llama.context_length", 128);
  g.U32("llama.rope.dimension_count", 4);
  g.F32("llama.rope.freq_base", 500000.0f);
  g.F32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  g.Str("tokenizer.ggml.model", "gpt2");
  g.Str("tokenizer.ggml.pre", "smollm");
  g.StrArray("tokenizer.ggml.tokens", {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b"});
  g.I32Array("tokenizer.ggml.token_type", {3, 3, 3, 1, 1});
  g.StrArray("tokenizer.ggml.merges", {"a b"});
  g.U32("tokenizer.ggml.bos_token_id", 1);
  g.U32("tokenizer.ggml.eos_token_id", 2);
  g.U32("tokenizer.ggml.padding_token_id", 2);
  g.Bool("tokenizer.ggml.add_bos_token", false);
  g.Str("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");
  uint32_t seed = 100;
  auto add = [&](const std::string& name, int64_t rows, int64_t cols, int64_t permute_heads, uint32_t type) {
    std::vector<float> v = testing::RandomValues(static_cast<size_t>(rows * cols), seed++);
    if (type == 1) {  // F16: store values exactly representable
      for (float& x : v) x = HalfToFloat(FloatToHalf(x));
    }
    t.hf[name] = v;
    std::vector<float> stored = permute_heads > 0 ? ConverterPermute(v, rows, cols, permute_heads) : v;
    std::vector<uint64_t> ne = rows == 1 ? std::vector<uint64_t>{uint64_t(cols)}
                                         : std::vector<uint64_t>{uint64_t(cols), uint64_t(rows)};
    if (type == 1) {
      std::string b;
      for (float x : stored) {
        const uint16_t h = FloatToHalf(x);
        b.append(reinterpret_cast<const char*>(&h), 2);
      }
      g.Tensor(name, ne, 1, b);
    } else {
      g.Tensor(name, ne, 0, F32Bytes(stored));
    }
  };
  add("token_embd.weight", 5, 8, 0, 1);
  add("blk.0.attn_norm.weight", 1, 8, 0, 0);
  add("blk.0.attn_q.weight", 8, 8, 2, 0);
  add("blk.0.attn_k.weight", 4, 8, 1, 0);
  add("blk.0.attn_v.weight", 4, 8, 0, 0);
  add("blk.0.attn_output.weight", 8, 8, 0, 0);
  add("blk.0.ffn_norm.weight", 1, 8, 0, 0);
  add("blk.0.ffn_gate.weight", 12, 8, 0, 0);
  add("blk.0.ffn_up.weight", 12, 8, 0, 0);
  add("blk.0.ffn_down.weight", 8, 12, 0, 0);
  add("output_norm.weight", 1, 8, 0, 0);
  if (!tied) add("output.weight", 5, 8, 0, 0);
  if (with_extra) add("blk.0.attn_output.bias", 1, 8, 0, 0);
  t.bytes = g.Build();
  return t;
}

void ExpectValues(const Tensor& t, const std::vector<float>& v, const std::string& name) {
  ASSERT_EQ(static_cast<size_t>(t.numel()), v.size()) << name;
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(t.data<float>()[i], v[i]) << name << "[" << i << "]";
}

absl::StatusOr<LoadedModel> Load(const std::string& path) {
  LoadOptions o;
  o.path = path;
  o.show_progress = false;
  return LoadModel(o);
}

TEST(GgufLoaderTest, TinyLlamaLoadsInHfLayoutWithMetadata) {
  ScratchDir dir;
  for (bool tied : {true, false}) {
    TinyGguf t = BuildTinyGguf(tied);
    const std::string path = dir.Path(tied ? "tied.gguf" : "untied.gguf");
    WriteFile(path, t.bytes);
    auto m = Load(path);
    ASSERT_TRUE(m.ok()) << m.status();
    const ModelConfig& c = m->config;
    EXPECT_EQ(m->format, LoadFormat::kGguf);
    EXPECT_EQ(c.hidden_size, 8);
    EXPECT_EQ(c.num_layers, 1);
    EXPECT_EQ(c.intermediate_size, 12);
    EXPECT_EQ(c.num_attention_heads, 2);
    EXPECT_EQ(c.num_kv_heads, 1);
    EXPECT_EQ(c.head_dim, 4);
    EXPECT_EQ(c.vocab_size, 5);
    EXPECT_EQ(c.max_position_embeddings, 128);
    EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
    EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
    EXPECT_EQ(c.tie_word_embeddings, tied);
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_ids, std::vector<int>({2}));
    EXPECT_EQ(c.name, "tiny");
    const ModelWeights& w = m->weights;
    ExpectValues(w.embed_tokens, t.hf["token_embd.weight"], "embed");
    ExpectValues(w.layers[0].q_proj, t.hf["blk.0.attn_q.weight"], "q (un-permuted)");
    ExpectValues(w.layers[0].k_proj, t.hf["blk.0.attn_k.weight"], "k (un-permuted)");
    ExpectValues(w.layers[0].v_proj, t.hf["blk.0.attn_v.weight"], "v");
    ExpectValues(w.layers[0].down_proj, t.hf["blk.0.ffn_down.weight"], "down");
    EXPECT_EQ(w.layers[0].down_proj.shape(), std::vector<int64_t>({8, 12}));
    ExpectValues(w.final_norm, t.hf["output_norm.weight"], "norm");
    if (tied) {
      EXPECT_TRUE(w.lm_head.SharesStorageWith(w.embed_tokens));
    } else {
      ExpectValues(w.lm_head, t.hf["output.weight"], "lm_head");
    }
    ASSERT_TRUE(m->gguf.has_value());
    const GgufMetadata& g = *m->gguf;
    EXPECT_EQ(g.tokenizer_model, "gpt2");
    EXPECT_EQ(g.tokenizer_pre, "smollm");
    EXPECT_EQ(g.tokens.size(), 5u);
    EXPECT_EQ(g.tokens[2], "<|im_end|>");
    EXPECT_EQ(g.token_types, std::vector<int32_t>({3, 3, 3, 1, 1}));
    EXPECT_EQ(g.merges, std::vector<std::string>({"a b"}));
    EXPECT_TRUE(g.scores.empty());
    EXPECT_EQ(g.pad_token_id, 2);
    EXPECT_EQ(g.unk_token_id, -1);
    EXPECT_EQ(g.add_bos_token, std::optional<bool>(false));
    EXPECT_FALSE(g.add_eos_token.has_value());
    EXPECT_EQ(m->chat_template, g.chat_template);
    EXPECT_THAT(g.chat_template, HasSubstr("messages"));
  }
}

// keep_16bit (backend: cuda): the dequantized weights rounded to bf16, Q/K rows back in HF order,
// exactly the fp32 load's values rounded to nearest even.
TEST(GgufLoaderTest, Keep16BitIsTheFp32LoadRoundedToBf16) {
  ScratchDir dir;
  TinyGguf t = BuildTinyGguf(false);
  const std::string path = dir.Path("untied.gguf");
  WriteFile(path, t.bytes);
  LoadOptions o;
  o.path = path;
  o.show_progress = false;
  auto fp32 = LoadModel(o);
  o.keep_16bit = true;
  auto bf16 = LoadModel(o);
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << fp32.status() << bf16.status();
  const auto check = [](const Tensor& a, const Tensor& b, const char* what) {
    ASSERT_EQ(b.dtype(), DType::kBF16) << what;
    ASSERT_EQ(a.shape(), b.shape()) << what;
    for (int64_t i = 0; i < a.numel(); ++i) {
      ASSERT_EQ(b.data<uint16_t>()[i], FloatToBf16(a.data<float>()[i])) << what << " element " << i;
    }
  };
  check(fp32->weights.embed_tokens, bf16->weights.embed_tokens, "embed_tokens");
  check(fp32->weights.lm_head, bf16->weights.lm_head, "lm_head");
  for (size_t l = 0; l < fp32->weights.layers.size(); ++l) {
    check(fp32->weights.layers[l].q_proj, bf16->weights.layers[l].q_proj, "q_proj (permuted in the file)");
    check(fp32->weights.layers[l].k_proj, bf16->weights.layers[l].k_proj, "k_proj (permuted in the file)");
    check(fp32->weights.layers[l].down_proj, bf16->weights.layers[l].down_proj, "down_proj");
    check(fp32->weights.layers[l].input_norm, bf16->weights.layers[l].input_norm, "input_norm");
  }
}

TEST(GgufLoaderTest, UnexpectedTensorAndWrongArchitectureAreErrors) {
  ScratchDir dir;
  WriteFile(dir.Path("extra.gguf"), BuildTinyGguf(true, /*with_extra=*/true).bytes);
  absl::Status s = Load(dir.Path("extra.gguf")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("blk.0.attn_output.bias"));

  std::string bytes = BuildTinyGguf(true).bytes;
  const size_t at = bytes.find("llama");  // general.architecture's value comes first
  bytes.replace(at, 5, "gemma");
  WriteFile(dir.Path("arch.gguf"), bytes);
  s = Load(dir.Path("arch.gguf")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("general.architecture"));
}

TEST(GgufFileTest, TypedMetadataAccess) {
  ScratchDir dir;
  WriteFile(dir.Path("t.gguf"), BuildTinyGguf(true).bytes);
  auto f = GgufFile::Open(dir.Path("t.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ(*(*f)->GetU32("llama.block_count"), 1u);
  EXPECT_EQ(*(*f)->GetString("general.name"), "tiny");
  EXPECT_FLOAT_EQ(*(*f)->GetF32("llama.rope.freq_base"), 500000.0f);
  EXPECT_EQ(*(*f)->GetArraySize("tokenizer.ggml.tokens"), 5u);
  EXPECT_EQ((*f)->GetU32("general.name").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->GetString("no.such.key").status().code(), absl::StatusCode::kNotFound);
  const GgufTensorInfo* q = (*f)->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape(), std::vector<int64_t>({8, 8}));
  EXPECT_EQ(q->nbytes, 256u);
  EXPECT_EQ((*f)->tensors().size(), 11u);
}

TEST(GgufFileTest, EveryTruncationIsAnErrorNamingTheFile) {
  ScratchDir dir;
  const std::string bytes = BuildTinyGguf(false).bytes;
  const std::string path = dir.Path("trunc.gguf");
  for (size_t len = 0; len < bytes.size(); len += (len < 2048 ? 1 : 7)) {
    WriteFile(path, bytes.substr(0, len));
    auto f = GgufFile::Open(path);
    ASSERT_FALSE(f.ok()) << "length " << len;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(path)) << "length " << len;
  }
  // Cut inside the last tensor's data: the error names that tensor.
  WriteFile(path, bytes.substr(0, bytes.size() - 4));
  auto f = GgufFile::Open(path);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("output.weight"));
}

TEST(GgufFileTest, BitFlippedHeadersNeverCrash) {
  ScratchDir dir;
  const std::string bytes = BuildTinyGguf(true).bytes;
  auto good = GgufFile::Open((WriteFile(dir.Path("g.gguf"), bytes), dir.Path("g.gguf")));
  ASSERT_TRUE(good.ok());
  const std::string path = dir.Path("flip.gguf");
  int errors = 0, loads = 0;
  const size_t data_start = bytes.size() - [&] {
    size_t total = 0;
    for (const auto& t : (*good)->tensors()) total = std::max<size_t>(total, t.offset + t.nbytes);
    return total;
  }();
  for (size_t pos = 0; pos < data_start; ++pos) {
    for (int bit : {0, 5, 7}) {
      std::string flipped = bytes;
      flipped[pos] = static_cast<char>(flipped[pos] ^ (1 << bit));
      WriteFile(path, flipped);
      auto m = Load(path);  // the whole loader, not just the parser
      if (m.ok()) {
        ++loads;
      } else {
        ++errors;
        EXPECT_THAT(std::string(m.status().message()), HasSubstr(path)) << "byte " << pos << " bit " << bit;
      }
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(loads, 0);  // e.g. flips inside string values that change nothing structural
}

TEST(GgufFileTest, BadMagicAndVersion) {
  ScratchDir dir;
  std::string bytes = BuildTinyGguf(true).bytes;
  bytes[0] = 'X';
  WriteFile(dir.Path("m.gguf"), bytes);
  auto f = GgufFile::Open(dir.Path("m.gguf"));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("not a GGUF file"));
  bytes = BuildTinyGguf(true).bytes;
  bytes[4] = 7;
  WriteFile(dir.Path("v.gguf"), bytes);
  f = GgufFile::Open(dir.Path("v.gguf"));
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("version 7"));
}

}  // namespace
}  // namespace tandem::model
