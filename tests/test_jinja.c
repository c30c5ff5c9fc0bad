/*
 * test_jinja.c -- the chat-template interpreter's language features one by one (each expected
 * output was produced by Python's jinja2, set up as transformers sets it up, when the case was
 * written), runtime errors where jinja2 raises, malformed templates (each an LX_E_FORMAT error
 * naming line:column, no crash) and the size / depth / step bounds.
 */
#include <cjson/cJSON.h>

#include "models/jinja.h"
#include "test_util.h"

enum { OK, RAISE, ERROR };

static const char *const CONTEXT =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi \\\"you\\\"\"}],"
    " \"name\": \"World\", \"n\": 7, \"f\": 2.5, \"items\": [3, 1, 2], \"d\": {\"b\": 2, \"a\": 1},"
    " \"s\": \"  Hello, World  \", \"flag\": true, \"nothing\": null, \"empty\": [], \"u\": \"na\\u00efve \\u00e9\","
    " \"nested\": {\"x\": {\"y\": [10, 20]}}}";

/* 26 Jul 2024 00:00 UTC, the date strftime_now formats in these cases */
#define NOW 1721952000

static const struct {
    const char *tmpl;
    int empty_context;
    int kind;
    const char *expected; /* the rendering, or raise_exception's message */
} cases[] = {
    {"plain text",
     1, OK, "plain text"},
    {"a {{ name }} b",
     0, OK, "a World b"},
    {"a\n{% if true %}\nx\n{% endif %}\nb",
     0, OK, "a\nx\nb"},
    {"a\n  {% if true %}\n  x\n  {% endif %}\nb",
     0, OK, "a\n  x\nb"},
    {"a  {%- if true -%}  x  {%- endif -%}  b",
     0, OK, "axb"},
    {"a {{- name -}} b",
     0, OK, "aWorldb"},
    {"a {#- comment -#} b",
     0, OK, "ab"},
    {"line\n{# c #}\nnext",
     0, OK, "line\nnext"},
    {"x  {%+ if true %}y{% endif %}",
     0, OK, "x  y"},
    {"{% raw %}{{ not }}{% endraw %}",
     0, OK, "{{ not }}"},
    {"keep\n",
     0, OK, "keep"},
    {"{{ 'a\\tb\\n' ~ \"q\\\"\" ~ '\\u00e9\\x41' }}",
     0, OK, "a\tb\nq\"\303\251A"},
    {"{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }}",
     0, OK, "7 9 3 -4 1 2 1024 3.5"},
    {"{{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 3.0 }} {{ 10 / 5 }}",
     0, OK, "2.5 0.30000000000000004 1e+20 1e-05 3.0 2.0"},
    {"{{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'x' + 'y' }} {{ 1 ~ 2 ~ none }}",
     0, OK, "ababab [1, 2] xy 12None"},
    {"{{ true }} {{ True }} {{ none }} {{ None }} {{ false and 1 }} {{ 0 or 'z' }} {{ not 0 }}",
     0, OK, "True True None None False z True"},
    {"{{ 1 < 2 < 3 }} {{ 1 < 2 > 3 }} {{ 'a' < 'b' }} {{ [1, 2] == [1, 2] }} {{ 1 == 1.0 }} {{ 1 != 2 }}",
     0, OK, "True False True True True True"},
    {"{{ 'a' in 'cat' }} {{ 2 in items }} {{ 'a' in d }} {{ 'z' not in d }} {{ 5 not in items }}",
     0, OK, "True True True True True"},
    {"{{ 'yes' if flag else 'no' }} {{ 'yes' if nothing else 'no' }} [{{ 'x' if false }}]",
     0, OK, "yes no []"},
    {"{{ [1, 'a', none, true, 2.5] }} {{ {'k': 'v', 'n': [1]} }} {{ (1,) }} {{ (1, 2) }} {{ \"it's\" }}",
     0, OK, "[1, 'a', None, True, 2.5] {'k': 'v', 'n': [1]} (1,) (1, 2) it's"},
    {"{{ messages[0].role }} {{ messages[1]['content'] }} {{ messages[-1].role }} [{{ missing }}] [{{ d.zz }}] [{{ messages[5] }}]",
     0, OK, "system Hi \"you\" user [] [] []"},
    {"{{ nested.x.y[1] }} {{ nested['x']['y'][0] }} {{ d.get('a') }} {{ d.get('q', 'dflt') }} {{ d.get('q') }}",
     0, OK, "20 10 1 dflt None"},
    {"{{ items[::-1] }} {{ items[1:] }} {{ items[:1] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ u[::-1] }} {{ u[1] }} {{ items[::2] }}",
     0, OK, "[2, 1, 3] [1, 2] [3] el olleh \303\251 ev\303\257an a [3, 2]"},
    {"{% for x in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
     0, OK, "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|"},
    {"{% for x in items %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% endfor %}",
     0, OK, "-3-1;3-1-2;1-2-;"},
    {"{% for x in items if x > 1 %}{{ x }}:{{ loop.length }} {% endfor %}",
     0, OK, "3:2 2:2 "},
    {"{% for x in empty %}no{% else %}empty{% endfor %}",
     0, OK, "empty"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
     0, OK, "b=2;a=1;ba"},
    {"{% for c in 'abc' %}{{ c }}.{% endfor %}",
     0, OK, "a.b.c."},
    {"{% for x in items %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     0, OK, "3"},
    {"{% for x in items %}{{ loop.cycle('a', 'b') }}{% endfor %}",
     0, OK, "aba"},
    {"{% if n > 10 %}big{% elif n > 5 %}mid{% else %}small{% endif %}",
     0, OK, "mid"},
    {"{% set x = 5 %}{% set y = x * 2 %}{{ y }}{% set a, b = 1, 2 %}{{ a }}{{ b }}",
     0, OK, "1012"},
    {"{% set x = 1 %}{% for i in items %}{% set x = i %}{% endfor %}{{ x }}",
     0, OK, "1"},
    {"{% set ns = namespace(a=1, b='s') %}{% for i in items %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns.b }}",
     0, OK, "7s"},
    {"{% set block %}in {{ name }}{% endset %}[{{ block }}]{% set up | upper %}x{{ n }}{% endset %}{{ up }}",
     0, OK, "[in World]X7"},
    {"{% macro greet(who, punct='!') %}Hi {{ who }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(who='C') }}",
     0, OK, "Hi A! Hi B? Hi C!"},
    {"{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inside{% endcall %}",
     0, OK, "[inside]"},
    {"{% filter upper %}shout {{ name }}{% endfilter %}",
     0, OK, "SHOUT WORLD"},
    {"{% generation %}kept{% endgeneration %}",
     0, OK, "kept"},
    {"[{{ s | trim }}] [{{ '..x..' | trim('.') }}] {{ name | upper }} {{ name | lower }} {{ 'hello wORLD-x' | title }} {{ 'hELLO' | capitalize }}",
     0, OK, "[Hello, World] [x] WORLD world Hello World-X Hello"},
    {"{{ items | length }} {{ 'na\303\257ve' | length }} {{ d | count }} {{ items | first }} {{ items | last }} {{ items | join(', ') }} {{ items | sort }} {{ items | sort(reverse=true) }}",
     0, OK, "3 5 2 3 2 3, 1, 2 [1, 2, 3] [3, 2, 1]"},
    {"{{ missing | default('dv') }} {{ '' | default('dv') }} {{ '' | default('dv', true) }} {{ missing | d('z') }}",
     0, OK, "dv  dv z"},
    {"{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'eq', 'user') | map(attribute='content') | join }} {{ messages | map(attribute='role') | list }}",
     0, OK, "1 Be brief. ['system', 'user']"},
    {"{{ items | reverse | list }} {{ 'abc' | reverse }} {{ d | list }} {{ d | items | list }} {{ [1, 1, 'a', 'A'] | unique | list }} {{ ['b', 'A', 'c'] | sort }}",
     0, OK, "[2, 1, 3] cba ['b', 'a'] [('b', 2), ('a', 1)] [1, 'a'] ['A', 'b', 'c']"},
    {"{{ '42' | int + 1 }} {{ '3.7' | int }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3 | float }} {{ 5 | string ~ '!' }} {{ -3 | abs }}",
     0, OK, "43 3 0 2.5 3.0 5! 3"},
    {"{{ d | tojson }} {{ messages[1] | tojson }} {{ [1, 2.5, none, true, '\303\251\\n'] | tojson }} {{ d | tojson(indent=2) }}",
     0, OK, "{\"b\": 2, \"a\": 1} {\"role\": \"user\", \"content\": \"Hi \\\"you\\\"\"} [1, 2.5, null, true, \"\303\251\\n\"] {\n  \"b\": 2,\n  \"a\": 1\n}"},
    {"{{ nested | tojson(indent=4) }} {{ {} | tojson }} {{ [] | tojson(indent=2) }} {{ d | tojson(sort_keys=true) }}",
     0, OK, "{\n    \"x\": {\n        \"y\": [\n            10,\n            20\n        ]\n    }\n} {} [] {\"a\": 1, \"b\": 2}"},
    {"{{ '<a href=\"x\">&' | e }} {{ 'x' | safe }} {{ 'a\\nb' | indent(2) }} {{ 'a\\nb' | indent(2, true) }} {{ 'one two  three' | wordcount }}",
     0, OK, "&lt;a href=&#34;x&#34;&gt;&amp; x a\n  b   a\n  b 3"},
    {"{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ items | sum }} {{ items | min }} {{ items | max }}",
     0, OK, "a+b+c bba 6 1 3"},
    {"{{ name is defined }} {{ missing is defined }} {{ missing is undefined }} {{ nothing is none }} {{ name is string }} {{ n is number }} {{ n is integer }} {{ f is float }} {{ d is mapping }} {{ items is iterable }} {{ name is sequence }} {{ flag is boolean }} {{ flag is true }} {{ flag is false }}",
     0, OK, "True False True True True True True True True True True True True False"},
    {"{{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }} {{ n is equalto 7 }} {{ n is eq(7) }} {{ 2 is in items }} {{ n is not none }} {{ 'ab' is lower }} {{ n is gt 3 }}",
     0, OK, "True False True True True True True True True"},
    {"[{{ s.strip() }}] [{{ s.lstrip() }}] [{{ s.rstrip() }}] [{{ 'xxhixx'.strip('x') }}] {{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.rsplit(' ', 1) }}",
     0, OK, "[Hello, World] [Hello, World  ] [  Hello, World] [hi] ['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a b', 'c']"},
    {"{{ name.startswith('Wo') }} {{ name.endswith('ld') }} {{ name.startswith(('x', 'W')) }} {{ name.upper() }} {{ name.lower() }} {{ 'a b'.title() }} {{ 'hello'.replace('l', 'L') }} {{ 'hello'.find('l') }} {{ 'hello'.count('l') }} {{ 'hello'.find('z') }}",
     0, OK, "True True True WORLD world A B heLLo 2 2 -1"},
    {"{{ '-'.join(['a', 'b']) }} {{ '{} and {}'.format(1, 'x') }} {{ '{0}{name}'.format('a', name='b') }} {{ 'x\\ny'.splitlines() }} {{ '12'.isdigit() }}",
     0, OK, "a-b 1 and x ab ['x', 'y'] True"},
    {"{{ d.keys() | list }} {{ d.values() | list }}",
     0, OK, "['b', 'a'] [2, 1]"},
    {"{{ range(3) | list }} {{ range(1, 7, 2) | list }} {% for i in range(2) %}{{ i }}{% endfor %} {{ strftime_now('%d %b %Y') }} {{ dict(a=1) }}",
     0, OK, "[0, 1, 2] [1, 3, 5] 01 26 Jul 2024 {'a': 1}"},
    {"{{ raise_exception('bad ' ~ name) }}",
     0, RAISE, "bad World"},
    {"{{ missing.attr }}",
     0, ERROR, ""},
    {"{{ 1 + 'a' }}",
     0, ERROR, ""},
    {"{{ missing + 1 }}",
     0, ERROR, ""},
    {"{{ 1 / 0 }}",
     0, ERROR, ""},
    {"{{ n() }}",
     0, ERROR, ""},
    {"{% set x.y = 1 %}",
     0, ERROR, ""},
    {"{{ nothing | tojson }}{{ missing | tojson }}",
     0, ERROR, ""},
    {"{{ 1 < 'a' }}",
     0, ERROR, ""},
    {"{{ 'a' in 1 }}",
     0, ERROR, ""},
};

/* renders src over ctx; NULL (error kept) on failure */
static char *render(const char *src, const cJSON *ctx) {
    lx_jinja *t = lx_jinja_parse(src, strlen(src), "test");
    if (!t) return NULL;
    char *out = lx_jinja_render_at(t, ctx, NOW);
    lx_jinja_free(t);
    return out;
}

static void test_cases(void) {
    cJSON *ctx = cJSON_Parse(CONTEXT), *empty = cJSON_CreateObject();
    CHECK(ctx && empty);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lx_clear_error();
        char *out = render(cases[i].tmpl, cases[i].empty_context ? empty : ctx);
        if (cases[i].kind == OK) {
            CHECK_MSG(out && !strcmp(out, cases[i].expected), "case %zu %s: got [%s] (%s), want [%s]", i,
                      cases[i].tmpl, out ? out : "NULL", lx_error_message(), cases[i].expected);
        } else if (cases[i].kind == RAISE) {
            char want[256];
            snprintf(want, sizeof want, "chat template: %s", cases[i].expected);
            CHECK_MSG(!out && lx_error() == LX_E_ARG && !strcmp(lx_error_message(), want),
                      "case %zu %s: got [%s] %s", i, cases[i].tmpl, out ? out : "NULL", lx_error_message());
        } else {
            /* a runtime error names where it happened */
            CHECK_MSG(!out && lx_error() == LX_E_FORMAT && !strncmp(lx_error_message(), "test:1:", 7),
                      "case %zu %s: got [%s] %s", i, cases[i].tmpl, out ? out : "NULL", lx_error_message());
        }
        free(out);
    }
    lx_clear_error();
    cJSON_Delete(ctx);
    cJSON_Delete(empty);
}

/* each fails to parse with LX_E_FORMAT "test:LINE:COL: ..." */
static void test_malformed(void) {
    static const struct { const char *src; const char *where; } bad[] = {
        {"{{ x ", "test:1:1:"},
        {"text {% if x %}", "test:1:16:"},
        {"{% for x in y %}\n{% endif %}", "test:2:4:"},
        {"{% endfor %}", "test:1:4:"},
        {"{{ 'unterminated }}", "test:1:4:"},
        {"{# never closed", "test:1:1:"},
        {"{{ a + }}", "test:1:8:"},
        {"{% if %}{% endif %}", "test:1:7:"},
        {"\n\n  {% frobnicate %}", "test:3:6:"},
        {"{{ a b }}", "test:1:6:"},
        {"{{ (1, 2 }}", "test:1:1:"},
        {"{{ [1, 2 }}", "test:1:1:"},
        {"{{ x | }}", "test:1:8:"},
        {"{{ x is }}", "test:1:9:"},
        {"{% set %}", "test:1:8:"},
        {"{% set x %}no end", "test:1:18:"},
        {"{% macro m(a=1, b) %}{% endmacro %}", "test:1:18:"},
        {"{{ x[] }}", "test:1:5:"},
        {"{{ 99999999999999999999 }}", "test:1:4:"},
        {"{{ '\\x4' }}", "test:1:5:"},
        {"{{ $ }}", "test:1:4:"},
        {"{% raw %}unclosed", "test:1:1:"},
        {"{% include 'x' %}", "test:1:4:"},
        {"{% for x in y recursive %}{% endfor %}", "test:1:4:"},
        {"{{ f(a=1, 2) }}", "test:1:11:"},
        {"{% if a %}{% else %}{% elif b %}{% endif %}", "test:1:24:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lx_clear_error();
        lx_jinja *t = lx_jinja_parse(bad[i].src, strlen(bad[i].src), "test");
        CHECK_MSG(!t && lx_error() == LX_E_FORMAT && !strncmp(lx_error_message(), bad[i].where, strlen(bad[i].where)),
                  "malformed %zu [%s]: %s (want %s)", i, bad[i].src, lx_error_message(), bad[i].where);
        lx_jinja_free(t);
    }
    /* every prefix of a real template parses or fails cleanly */
    static const char full[] =
        "{%- for m in messages %}{% if loop.first and m['role'] != 'system' %}{{ '<s>' }}{% endif %}"
        "{{ m.role ~ ': ' ~ m.content | trim }}{# c #}\n{%- endfor %}{% set ns = namespace(a=[1, {'k': 2.5}]) %}";
    for (size_t n = 0; n <= sizeof full - 1; n++) {
        lx_clear_error();
        lx_jinja *t = lx_jinja_parse(full, n, "test");
        CHECK(t || lx_error() == LX_E_FORMAT);
        lx_jinja_free(t);
    }
    lx_clear_error();
}

static void test_bounds(void) {
    cJSON *ctx = cJSON_CreateObject();
    /* deep nesting in the source */
    char deep[2000];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 600; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 600; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    lx_clear_error();
    CHECK(!render(deep, ctx) && lx_error() == LX_E_FORMAT);
    /* a long left-deep chain parses but is refused at evaluation, not overflowing the stack */
    char *chain = malloc(40000);
    k = (size_t)snprintf(chain, 40000, "{{ 1");
    for (int i = 0; i < 5000; i++) k += (size_t)snprintf(chain + k, 40000 - k, " + 1");
    snprintf(chain + k, 40000 - k, " }}");
    lx_clear_error();
    char *out = render(chain, ctx);
    CHECK(!out && lx_error() == LX_E_FORMAT);
    free(out);
    free(chain);
    static const char *const refused[] = {
        "{% for i in range(100000000) %}{% endfor %}",
        "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}",
        "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
        "{{ 'x' * 1000000000 }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        "{{ 9223372036854775807 + 1 }}",
        "{{ 2 ** 64 }}",
        "{% break %}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        lx_clear_error();
        out = render(refused[i], ctx);
        CHECK_MSG(!out && lx_error() == LX_E_FORMAT, "bound %zu [%s]: %s", i, refused[i], lx_error_message());
        free(out);
    }
    /* a namespace holding itself neither loops nor leaks */
    lx_clear_error();
    out = render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns.me.me is defined }}", ctx);
    CHECK(out && !strcmp(out, "True"));
    free(out);
    lx_clear_error();
    cJSON_Delete(ctx);
}

static void test_api(void) {
    lx_clear_error();
    CHECK(!lx_jinja_render(NULL, NULL) && lx_error() == LX_E_ARG);
    lx_clear_error();
    lx_jinja *t = lx_jinja_parse("{{ x | default('none') }}", 25, NULL);
    CHECK(t != NULL);
    char *out = lx_jinja_render(t, NULL); /* no context: every name undefined */
    CHECK(out && !strcmp(out, "none"));
    free(out);
    cJSON *arr = cJSON_CreateArray();
    out = lx_jinja_render(t, arr);
    CHECK(!out && lx_error() == LX_E_ARG);
    cJSON_Delete(arr);
    lx_clear_error();
    lx_jinja_free(t);
    lx_jinja_free(NULL);
    /* the template text may hold a NUL; it is text like any other */
    t = lx_jinja_parse("a\0b", 3, "nul");
    out = t ? lx_jinja_render(t, NULL) : NULL;
    CHECK(out && out[0] == 'a' && out[1] == '\0' && out[2] == 'b');
    free(out);
    lx_jinja_free(t);
    /* strftime_now without a pinned time reads the clock */
    t = lx_jinja_parse("{{ strftime_now('%Y') | length }}", 33, "clock");
    out = t ? lx_jinja_render(t, NULL) : NULL;
    CHECK(out && !strcmp(out, "4"));
    free(out);
    lx_jinja_free(t);
    lx_clear_error();
}

int main(void) {
    test_cases();
    test_malformed();
    test_bounds();
    test_api();
    printf("test_jinja: %d checks, %d failures\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}
