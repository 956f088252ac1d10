// The Jinja interpreter against jinja2 (configured as transformers configures it) on small templates
// exercising each construct (tests/golden/tokenizer/jinja_cases.py), plus parse errors.
#include <gtest/gtest.h>

#include <cstdio>

#include "golden_fixtures.h"
#include "tandem/tokenizer/chat_template.h"

namespace tandem::tokenizer {
namespace {

TEST(ChatTemplateGolden, EveryCaseMatchesJinja2) {
  auto cases = testing::ReadJson(testing::GoldenDir() + "/jinja_cases.golden.json");
  ASSERT_GT(cases.size(), 30u);
  int passed = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"].get<std::string>();
    auto tmpl = ChatTemplate::Parse(c["template"].get<std::string>());
    ASSERT_TRUE(tmpl.ok()) << name << ": " << tmpl.status();
    auto out = (*tmpl)->Render(c["variables"]);
    if (c["error"].is_null()) {
      ASSERT_TRUE(out.ok()) << name << ": " << out.status();
      EXPECT_EQ(*out, c["text"].get<std::string>()) << name;
      passed += out.ok() && *out == c["text"].get<std::string>();
    } else {
      EXPECT_FALSE(out.ok()) << name << ": jinja2 raised " << c["error"] << " but we rendered '" << out.value_or("")
                             << "'";
      if (!out.ok()) {
        // Errors name the template line.
        EXPECT_NE(out.status().message().find("chat template line "), std::string::npos) << out.status();
        ++passed;
      }
    }
  }
  std::printf("[golden jinja] %d/%zu cases match jinja2\n", passed, cases.size());
}

TEST(ChatTemplate, RaiseExceptionCarriesMessage) {
  auto tmpl = ChatTemplate::Parse("a\n{{ raise_exception('Conversation roles must alternate') }}");
  ASSERT_TRUE(tmpl.ok());
  auto out = (*tmpl)->Render(nlohmann::ordered_json::object());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("Conversation roles must alternate"), std::string::npos);
  EXPECT_NE(out.status().message().find("line 2"), std::string::npos) << out.status();
}

TEST(ChatTemplate, UnsupportedConstructsNameLineAndConstruct) {
  struct Case {
    const char* source;
    const char* expect;
  };
  const Case cases[] = {
      {"ok\n{% include 'other.j2' %}", "line 2: unsupported construct: tag '{% include"},
      {"{% for x in xs recursive %}{% endfor %}", "recursive"},
      {"\n\n{% if x %}", "line 3"},
      {"{{ x | nosuchfilter }}", "unsupported filter 'nosuchfilter'"},
      {"{{ x is nosuchtest }}", "unsupported test 'nosuchtest'"},
      {"{{ f(*args) }}", "*args"},
      {"{{ 'unterminated }}", "unterminated string"},
  };
  for (const auto& c : cases) {
    auto tmpl = ChatTemplate::Parse(c.source);
    absl::Status status = tmpl.status();
    if (tmpl.ok()) status = (*tmpl)->Render(nlohmann::ordered_json{{"x", 1}, {"xs", {1}}}).status();
    ASSERT_FALSE(status.ok()) << c.source;
    EXPECT_NE(status.message().find(c.expect), std::string::npos) << c.source << " -> " << status;
  }
}

TEST(ChatTemplate, StrftimeNowFormatsTheDate) {
  auto tmpl = ChatTemplate::Parse("{{ strftime_now('%Y') | length }}");
  ASSERT_TRUE(tmpl.ok());
  auto out = (*tmpl)->Render(nlohmann::ordered_json::object());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "4");
}

}  // namespace
}  // namespace tandem::tokenizer
