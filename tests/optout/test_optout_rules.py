"""The opt-out conventions a page or media file may state (m5data/optout.py): X-Robots-Tag in
Google's syntax, W3C TDMRep's header, meta and /.well-known/tdmrep.json rules."""

import pytest

from m5data.optout import DEFAULT_DIRECTIVES, OptOut, agent_token, robots_optout, tdm_optout, tdmrep_rules

AGENT = agent_token("m5data/0.1 (+dataset builder; respects robots.txt)")


def test_agent_token_is_the_user_agents_product_token():
    assert AGENT == "m5data"
    assert agent_token("MyBot (+https://x.test)") == "mybot"


@pytest.mark.parametrize("values, said", [
    (["noai"], "noai"),
    (["noindex, nofollow"], "noindex"),  # a comma list
    (["nofollow", "NoImageAI"], "noimageai"),  # several headers, any case
    (["m5data: noai"], "noai"),  # scoped to our agent
    (["googlebot: noindex", "m5data: noimageindex, noai"], "noimageindex, noai"),
    (["none"], "noindex"),  # none = noindex, nofollow
    (["otherbot: noai, noindex"], None),  # scoped to another agent: not ours
    (["googlebot: noindex, m5data: nofollow"], None),  # the scope changes at the next agent
    (["unavailable_after: 25 Jun 2030 15:00:00 PST"], None),  # a directive with a value, not an agent
    (["nofollow, nosnippet"], None),
    ([], None),
])
def test_x_robots_tag(values, said):
    found = robots_optout(values, AGENT, DEFAULT_DIRECTIVES)
    assert found == (OptOut("x-robots-tag", said) if said else None)


def test_x_robots_tag_directives_are_a_setting():
    assert robots_optout(["noindex"], AGENT, ["noai"]) is None
    assert robots_optout(["noarchive"], AGENT, ["noarchive"]) == OptOut("x-robots-tag", "noarchive")


RULES = b"""[
  {"location": "/public/*", "tdm-reservation": 0},
  {"location": "/shop/*.jpg$", "tdm-reservation": 1, "tdm-policy": "https://shop.test/policy.json"},
  {"location": "/shop/reserved/", "tdm-reservation": 1},
  {"location": "/", "tdm-reservation": 0}
]"""


@pytest.mark.parametrize("path, reserved", [
    ("/shop/reserved/p1.html", True),  # a prefix
    ("/shop/img/a.jpg", True),  # * and $
    ("/shop/img/a.jpg?w=100", False),  # $ is the end: the query is part of the path matched
    ("/public/shop/reserved/x", False),  # the first matching rule decides
    ("/other.html", False),
])
def test_tdmrep_json_locations(path, reserved):
    rules = tdmrep_rules(RULES)
    found = tdm_optout(None, None, rules, path)
    assert (found is not None) == reserved
    if reserved:
        assert found.source == "tdmrep.json" and found.directive.startswith("tdm-reservation: 1 (location ")


def test_tdm_header_and_meta_go_before_the_file():
    rules = tdmrep_rules(b'[{"location": "/", "tdm-reservation": 1}]')
    assert tdm_optout("1", None, None, "/") == OptOut("tdm-header", "tdm-reservation: 1")
    assert tdm_optout(None, "1", None, "/") == OptOut("tdm-meta", "tdm-reservation: 1")
    assert tdm_optout(b"0", None, rules, "/a") is None  # 0: not reserved, whatever the file says
    assert tdm_optout(None, " 0 ", rules, "/a") is None
    assert tdm_optout(None, None, rules, "/a").source == "tdmrep.json"
    assert tdm_optout("yes", None, None, "/a") is None  # neither 0 nor 1: not said


def test_a_pages_tdm_meta_supersedes_its_header_as_the_spec_orders():
    """TDMRep's processing priority: the file, then the header (supersedes the file), then the HTML
    meta (supersedes both): a page whose header says 0 and whose meta says 1 is reserved."""
    assert tdm_optout("0", "1", None, "/p") == OptOut("tdm-meta", "tdm-reservation: 1")
    assert tdm_optout("1", "0", None, "/p") is None
    assert tdm_optout("1", "maybe", None, "/p") == OptOut("tdm-header", "tdm-reservation: 1")  # meta not said


@pytest.mark.parametrize("body", [b"{}", b"not json", b'"x"'])
def test_bad_tdmrep_json_is_refused(body):
    with pytest.raises(ValueError):
        tdmrep_rules(body)
