// The Jinja interpreter against jinja2 (configured as transformers configures it) on small templates
// exercising each construct (tests/golden/tokenizer/jinja_cases.py), plus parse errors.
#include <gtest/gtest.h>

#include <cstdio>

#include "golden_fixtures.h"
#include "support/status_matchers.h"
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

// Found by fuzz/fuzz_chat_template: an integer literal or numeric attribute path beyond 64 bits threw
// std::out_of_range out of std::stoll and ended the process (a model's template is read at load).
TEST(ChatTemplate, NumbersBeyond64BitsAreErrorsNotCrashes) {
  auto literal = ChatTemplate::Parse("x\n{{ 99999999999999999999 }}");
  ASSERT_FALSE(literal.ok());
  EXPECT_NE(literal.status().message().find("line 2: integer literal 99999999999999999999 does not fit in 64 bits"),
            std::string::npos)
      << literal.status();
  auto index = ChatTemplate::Parse("{{ messages.99999999999999999999 }}");
  ASSERT_ERROR(index, absl::StatusCode::kInvalidArgument,
               "chat template line 1: integer literal 99999999999999999999 does not fit in 64 bits");
  auto path = ChatTemplate::Parse("{{ messages|map(attribute='99999999999999999999')|list }}");
  ASSERT_TRUE(path.ok()) << path.status();
  auto out = (*path)->Render({{"messages", {{1, 2}}}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("does not fit in 64 bits"), std::string::npos) << out.status();
  // And a \x escape without hex digits (std::stoul threw).
  auto escape = ChatTemplate::Parse("{{ 'a\\xZZ' }}");
  ASSERT_FALSE(escape.ok());
  EXPECT_NE(escape.status().message().find("is not 2 hex digits"), std::string::npos) << escape.status();
  auto good = ChatTemplate::Parse("{{ '\\x41\\u00e9' }}");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(*(*good)->Render(nlohmann::ordered_json::object()), "A\xc3\xa9");
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
