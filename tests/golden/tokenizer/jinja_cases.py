"""Small Jinja2 templates exercising each construct chat templates use; generate_goldens.py renders
them with jinja2 (configured as transformers does) into jinja_cases.golden.json."""

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!", "tool_calls": [
        {"function": {"name": "f", "arguments": {"x": 1, "y": [1.5, None, True], "s": "a\"b\u00e9\n"}}}]},
    {"role": "user", "content": "<tool_response>ok</tool_response>"},
]

CASES = [
    ("literal_text", "plain text\nline two\n", {}),
    ("output_types", "{{ 1 }}|{{ 1.5 }}|{{ 2.0 }}|{{ 1e20 }}|{{ 0.0001 }}|{{ none }}|{{ true }}|{{ 'x' }}|{{ [1, 'a', none] }}|{{ {'k': 'v'} }}|{{ undefined_var }}|", {}),
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'ab' * 3 }} {{ 'a' ~ 1 ~ none }}", {}),
    ("compare_chain", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'x' in 'xyz' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }}", {}),
    ("and_or_values", "{{ 0 or 'fallback' }} {{ 'a' and 'b' }} {{ none or none }} {{ not 0 }} {{ not (1 and 0) }}", {}),
    ("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x is even %}even{% else %}odd{% endif %},{% endfor %}", {}),
    ("for_loop_vars", "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.revindex }}:{{ m.role }}\n{% endfor %}", {"messages": MESSAGES}),
    ("for_else_and_filter", "{% for x in [] %}no{% else %}empty{% endfor %}|{% for x in range(10) if x % 3 == 0 %}{{ x }}{{ ',' if not loop.last }}{% endfor %}", {}),
    ("for_dict_items", "{% for k, v in {'a': 1, 'b': [2]}.items() %}{{ k }}={{ v }};{% endfor %}{% for k in {'z': 1, 'y': 2} %}{{ k }}{% endfor %}", {}),
    ("loop_controls", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("namespace_set", "{% set ns = namespace(count=0, last='') %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.last = m.role %}{% endfor %}{{ ns.count }} {{ ns.last }}", {"messages": MESSAGES}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 3 %}{% endif %}{{ x }}", {}),
    ("set_tuple_and_block", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set block %}inside {{ a }}{% endset %}[{{ block }}]", {}),
    ("macro", "{% macro tag(name, value='dflt') %}<{{ name }}>{{ value }}</{{ name }}>{% endmacro %}{{ tag('a') }}{{ tag('b', 'x') }}{{ tag(value='v', name='c') }}", {}),
    ("reverse_slice", "{{ messages[::-1] | map(attribute='role') | join(',') }} {{ 'hello'[::-1] }} {{ 'hello'[1:3] }} {{ [1,2,3,4,5][1::2] }} {{ 'héllo'[-2:] }} {{ messages[-1].role }}", {"messages": MESSAGES}),
    ("string_methods", "{{ '  x y  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\nA\\n'.lstrip('\\n') }}|{{ 'ab\\n\\n'.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a</think>b'.split('</think>')[-1] }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ 'a-b'.replace('-', '+') }}|{{ 'hello world'.title() }}|{{ 'hello'.capitalize() }}", {}),
    ("filters_basic", "{{ '  pad  ' | trim }}|{{ [3,1,2] | length }}|{{ 'héllo' | length }}|{{ [3,1,2] | first }}|{{ [3,1,2] | last }}|{{ 'AbC' | lower }}|{{ 'AbC' | upper }}|{{ 'a b a' | replace('a', 'x') }}|{{ ['a','b'] | join('-') }}|{{ [1, 2] | join }}|{{ missing | default('d') }}|{{ '' | default('e', true) }}|{{ none | default('n') }}", {}),
    ("filters_collections", "{{ {'b': 1, 'a': 2} | items | list }}|{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}|{{ messages | rejectattr('role', 'eq', 'user') | list | length }}|{{ [1, 2, 1, 3] | unique | list }}|{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2] | reverse | list }}|{{ ['a', 'b'] | map('upper') | list }}|{{ [1, 2, 3] | sum }}|{{ [1, 5, 3] | max }}", {"messages": MESSAGES}),
    ("filters_numbers", "{{ '42' | int + 1 }}|{{ 3.7 | int }}|{{ '2.5' | float }}|{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 5 | string ~ 'x' }}", {}),
    ("tojson", "{{ messages[2].tool_calls[0].function.arguments | tojson }}\n{{ {'a': [1, {'b': none}], 'c': 'd'} | tojson(indent=2) }}\n{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}\n{{ 'quote \" and \\\\ and </tag>' | tojson }}", {"messages": MESSAGES}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ x is string }}{{ n is number }}{{ n is integer }}{{ f is float }}{{ d is mapping }}{{ l is iterable }}{{ l is sequence }}{{ none is none }}{{ x is not none }}{{ n is divisibleby 3 }}{{ n is odd }}{{ b is boolean }}{{ b is true }}{{ b is false }}{{ x is lower }}{{ n is eq 9 }}{{ n is ge 3 }}", {"x": "str", "n": 9, "f": 1.5, "d": {"k": 1}, "l": [1], "b": True}),
    ("attr_vs_item", "{{ m.role }}{{ m['role'] }}{{ m.missing }}{{ m.missing is defined }}{{ m.get('role') }}{{ m.get('nope', 'dflt') }}{{ m.keys() | list }}{{ m.content.split(' ')[0] }}", {"m": {"role": "user", "content": "a b"}}),
    ("whitespace_control", "A\n  {%- if true -%}\n  B\n  {%- endif %}\nC {{- ' D ' -}} E\n{# comment #}\nF\n    {% if true %}\n    G\n    {% endif %}\nH {%+ if true %}I{% endif %}", {}),
    ("trim_lstrip_blocks", "<start>\n{% for m in messages %}\n  {% if m.role == 'user' %}\n    U: {{ m.content }}\n  {% else %}\n    O: {{ m.role }}\n  {% endif %}\n{% endfor %}\n<end>\n", {"messages": MESSAGES}),
    ("conditional_expr", "{{ 'yes' if flag else 'no' }}|{{ 'only-if' if flag }}|{{ 'x' if not flag }}|{{ (1 if flag else 2) + 10 }}", {"flag": True}),
    ("string_escapes", "{{ 'tab\\there' }}|{{ \"dq 'single'\" }}|{{ 'unicode \\u00e9 \\x41' }}|{{ 'concat' 'enated' }}", {}),
    ("raise_exception", "{% if messages[0].role != 'system' %}{{ raise_exception('first message must be system') }}{% endif %}ok", {"messages": MESSAGES[1:]}),
    ("raise_exception_not_taken", "{% if messages[0].role != 'system' %}{{ raise_exception('first message must be system') }}{% endif %}ok", {"messages": MESSAGES}),
    ("undefined_attribute_error", "{{ nothing.attr }}", {}),
    ("type_error", "{{ 'a' + 1 }}", {}),
    ("in_none_error", "{{ 'x' in none }}", {}),
    ("generation_block", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}[{{ m.role }}]{% endif %}{% endfor %}", {"messages": MESSAGES}),
    ("bos_eos_vars", "{{ bos_token }}x{{ eos_token }}{{ add_generation_prompt }}{{ tools is none }}", {"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": False, "tools": None}),
    ("nested_loops_loopvar", "{% for a in [1, 2] %}{% for b in ['x', 'y'] %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("dict_literal_and_list_ops", "{% set d = {'a': 1, 'b': 2} %}{{ d.a + d['b'] }}{{ ([1] + [2, 3]) | length }}{{ d | length }}{{ [1, 2][0] }}", {}),
    ("trailing_newline_dropped", "line\n", {}),
    ("crlf_source", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
]

LLAMA31_LIKE = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions." }}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

MISTRAL_LIKE = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather \u00e0 Paris",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
CONV = [{"role": "system", "content": "  Sys prompt.  "}, {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": {"temp": 18}}, {"role": "assistant", "content": "18 degrees."}]
BASE = {"bos_token": "<|begin_of_text|>", "eos_token": "</s>", "add_generation_prompt": True}

CASES += [
    ("raw_block", "a {% raw %}{{ not evaluated }} {% if %}{% endraw %} b\n  {% raw -%}\n  x  \n  {%- endraw %}|", {}),
    ("llama31_like_tools", LLAMA31_LIKE, dict(BASE, messages=CONV, tools=TOOLS)),
    ("llama31_like_no_tools", LLAMA31_LIKE, dict(BASE, messages=CONV[:2], tools=None, date_string="1 Jan 2026")),
    ("llama31_like_tools_no_user", LLAMA31_LIKE, dict(BASE, messages=[{"role": "system", "content": "s"}], tools=TOOLS)),
    ("mistral_like", MISTRAL_LIKE, dict(BASE, messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                                                      {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}])),
    ("mistral_like_alternation_error", MISTRAL_LIKE, dict(BASE, messages=[{"role": "user", "content": "a"},
                                                                        {"role": "user", "content": "b"}])),
]
