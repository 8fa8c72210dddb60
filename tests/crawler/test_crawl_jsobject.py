"""The tolerant JavaScript object-literal reader and the script payload finder."""

import json
import random

import pytest

from m5data.crawler.jsobject import JSSyntaxError, js_assignments, loads_lenient, parse_js


@pytest.mark.parametrize("text, value", [
    ("{a: 1, 'b': \"two\", c: [1, 2,], }", {"a": 1, "b": "two", "c": [1, 2]}),  # unquoted keys, trailing commas
    ("{name: '\\u534e\\u4e3a \\'Mate\\'', n: -1.5e2, h: 0x1F, ok: !0, no: !1, u: undefined}",
     {"name": "华为 'Mate'", "n": -150.0, "h": 31, "ok": True, "no": False, "u": None}),
    ("{start: +new Date, f: function () { return {a: 1}; }, g: a || b, keep: 3}",
     {"start": None, "f": None, "g": None, "keep": 3}),  # expressions become None; the rest stays
    ("{/* c */ a: 1, // line\n b: `tpl`, j: JSON.parse('{\"x\": [1]}')}", {"a": 1, "b": "tpl", "j": {"x": [1]}}),
    ('{"plain": {"json": [true, false, null, 1.5]}}', {"plain": {"json": [True, False, None, 1.5]}}),
    ("{1: 'one', get x() { return 1 }, y: 2}", {"1": "one", "y": 2}),
    ("[1, , 2]", [1, 2]),
])
def test_parse_js_reads_what_json_refuses(text, value):
    assert parse_js(text) == value


def test_parse_js_unclosed_and_broken_literals_end_instead_of_looping():
    assert parse_js("{a: 1); more") == {"a": None}
    assert parse_js("{a: {b: [1, 2") == {"a": {"b": [1, 2]}}
    assert parse_js("{x: 'unterminated\n, y: 2}") == {"x": "unterminated", "y": 2}
    assert parse_js("{a: 1, b: x /* never closed") == {"a": 1, "b": None}
    with pytest.raises(JSSyntaxError):
        parse_js("}")


def test_parse_js_terminates_on_random_junk():
    rng = random.Random(7)
    alphabet = "{}[](),:;'\"`/*\\\n ab01.-+!=$"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        try:
            parse_js(text)
        except JSSyntaxError:
            pass


def test_js_assignments_terminates_on_random_scripts():
    rng = random.Random(11)
    tokens = ["var ", "x", " = ", "{", "}", "[", "]", "(", ")", ",", ":", ";", "'", '"', "`", "/*", "*/", "//", "\n",
              "window.", "a.b", "1", "!0", "new Date", "JSON.parse(", "\\"]
    for _ in range(2000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 40)))
        list(js_assignments(text))
        loads_lenient(text)


def test_js_assignments_finds_vars_window_properties_and_calls_in_order():
    script = """
    var g_config = {itemId: '1', idata: {item: {title: 'T'}}};
    window.runParams = {data: {x: 1}};
    window["_itemOnly"] = ({item: {skuName: 'S'}});
    TShop.Setup({"itemDO": {"itemId": "2"}});
    if (a == {}) {}  // a comparison, not an assignment
    """
    found = list(js_assignments(script))
    assert [name for name, _ in found] == ["g_config", "window.runParams", "_itemOnly", "TShop.Setup"]
    assert found[0][1] == {"itemId": "1", "idata": {"item": {"title": "T"}}}
    assert dict(js_assignments(script, ("runParams",))) == {"window.runParams": {"data": {"x": 1}}}


def test_loads_lenient_json_jsonp_and_scripts():
    assert loads_lenient('{"a": 1}') == {"a": 1}
    assert loads_lenient("mtopjsonp1({'a': 1,})") == {"a": 1}
    assert loads_lenient("var A = {x: 1};\nvar B = [2];") == {"A": {"x": 1}, "B": [2]}
    assert loads_lenient("not a payload") is None


def test_json_fast_path_matches_json_module_on_a_large_payload():
    data = {"items": [{"id": i, "name": f"名{i}", "tags": ["a", "b"], "price": i * 1.5} for i in range(2000)]}
    assert parse_js(json.dumps(data, ensure_ascii=False)) == data
