#!/usr/bin/env python3
"""Writes corpus.json and conversations.json (the inputs of the tokenizer goldens).

Run once; the outputs are committed. generate_goldens.py turns them into expected ids and renders.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

corpus = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing spaces   ",
    "line one\nline two\n\n\nline five\r\nwindows line\n",
    "tabs\tand\t\tmixed \t whitespace\u00a0nbsp\u3000ideographic space",
    "I'm sure you've seen it; they'll say we'd DONE IT'S fine.",
    "Numbers: 1 12 123 1234 12345 123456789 3.14159 -42 1e10 0x1F 1,000,000",
    "Arabic digits \u0661\u0662\u0663 and fullwidth \uff11\uff12\uff13",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
    "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3068\u30ab\u30bf\u30ab\u30ca\u3001\u3072\u3089\u304c\u306a\u3002",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc744 \ud1a0\ud070\ud654\ud569\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! \u0647\u0630\u0627 \u0646\u0635 \u0639\u0631\u0628\u064a.",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e, \u092f\u0939 \u0939\u093f\u0902\u0926\u0940 \u0939\u0948\u0964",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0415\u0449\u0451 \u043e\u0434\u043d\u0430 \u0441\u0442\u0440\u043e\u043a\u0430.",
    "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 and decomposed Cafe\u0301 nai\u0308ve",
    "Emoji: \U0001f600 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f3f3\ufe0f\u200d\U0001f308 \U0001f1ef\U0001f1f5 \u2764\ufe0f",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "for (int i = 0; i < 10; ++i) {\n\tsum += a[i] * b[i];\n}",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "https://example.com/path?query=1&x=y#frag user@example.org",
    "$$\\int_0^\\infty e^{-x^2} dx = \\frac{\\sqrt{\\pi}}{2}$$",
    "!!!???...,,,;;;:::---___***&&&",
    "         ",
    "\n\n\n\n",
    " \n \n\t\n",
    "a",
    " ",
    "",
    "MiXeD CaSe WoRdS and ALLCAPS and lowercase",
    "Special tokens inside text: <|begin_of_text|> <|im_start|>user\nhi<|im_end|> <|endoftext|>"
    " <\uff5cbegin\u2581of\u2581sentence\uff5c> <|eot_id|> <think>x</think>",
    "Broken specials: <|im_start <|endoftext| <|eot_id |> <|",
    "Antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" * 3000,
    "ab" * 700 + " " + "\u00e9" * 300,
    "  \u00a0 \u2003mixed unicode spaces\u2009here\u202f",
    "Zero\u200bwidth\u200cjoiners\u200dand\ufeffbom",
    "Control chars: \x01\x02\x1b[31mred\x1b[0m",
    "Math: \u2200x\u2208\u211d, x\u00b2 \u2265 0 \u2192 \u221ax \u2248 \u03c0",
    "Mixed: English \u4e2d\u6587 English \u65e5\u672c\u8a9e 123\u5e74 4\u6708 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 end",
    "Repeated    spaces     between      words",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE",
]

conversations = [
    {"name": "user_only", "messages": [{"role": "user", "content": "Hello!"}]},
    {"name": "system_user", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"}]},
    {"name": "multi_turn", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"}]},
    {"name": "ends_with_assistant", "messages": [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!"}]},
    {"name": "thinking", "messages": [
        {"role": "user", "content": "Think first."},
        {"role": "assistant", "content": "<think>\nLet me reason.\n</think>\n\nThe answer is 7."},
        {"role": "user", "content": "Again?"}]},
    {"name": "unicode_whitespace", "messages": [
        {"role": "system", "content": "  R\u00e9ponds en fran\u00e7ais.  \n"},
        {"role": "user", "content": "\u65e5\u672c\u8a9e\u3067\u7b54\u3048\u3066 \U0001f642\n\n"},
        {"role": "assistant", "content": "\u306f\u3044\u3001\u3082\u3061\u308d\u3093\u3002"}]},
    {"name": "two_systems", "messages": [
        {"role": "system", "content": "Rule one."},
        {"role": "system", "content": "Rule two."},
        {"role": "user", "content": "Go."}]},
    {"name": "with_tools", "tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                                          "parameters": {"type": "object", "properties": {
                                              "city": {"type": "string", "description": "City name"}},
                                              "required": ["city"]}}}],
     "messages": [
        {"role": "system", "content": "Use tools when needed."},
        {"role": "user", "content": "Weather in Paris? \"quoted\" & <tag>"}]},
    {"name": "tool_call_round", "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "content": "{\"temp_c\": 18}"},
        {"role": "assistant", "content": "It is 18 \u00b0C."}]},
    {"name": "empty_content", "messages": [
        {"role": "user", "content": ""}]},
]

with open(os.path.join(HERE, "corpus.json"), "w", encoding="utf-8") as f:
    json.dump(corpus, f, ensure_ascii=False, indent=1)
    f.write("\n")
with open(os.path.join(HERE, "conversations.json"), "w", encoding="utf-8") as f:
    json.dump(conversations, f, ensure_ascii=False, indent=1)
    f.write("\n")
