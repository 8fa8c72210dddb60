"""Opt-outs a page or a media file states, read by the crawl (pages) and the download (media).

Two conventions (docs/compliance.md, "Opt-outs"):

- **X-Robots-Tag** (Google's syntax): a header value is a comma list of directives, each header
  one more list; ``<agent>: <directives>`` scopes the directives after it to that user agent, and
  applies only when it names ours (the product token of ``http.user_agent``). The directives
  that opt out are a setting (``optout_directives`` of the crawl and download sections); the
  default is img2dataset's: ``noai``, ``noimageai``, ``noindex``, ``noimageindex`` (``none`` is
  ``noindex, nofollow``).
- **W3C TDMRep** (TDM Reservation Protocol, final report 2024-05-10): ``tdm-reservation: 1`` as a
  response header or a page's ``<meta name="tdm-reservation" content="1">`` reserves the rights;
  ``0`` reserves nothing. ``/.well-known/tdmrep.json`` (fetched once per host and run) is a JSON
  array of rules ``{"location": ..., "tdm-reservation": 0|1, "tdm-policy": ...}``; a rule's
  ``location`` is a path pattern in the robots.txt manner (a prefix of the path and query, ``*``
  any characters, a final ``$`` the end) and the first rule, in the file's order, whose location
  matches decides. What the resource itself says (its header, then its meta) goes before the file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
SOURCES = ("x-robots-tag", "robots-meta", "tdm-header", "tdm-meta", "tdmrep.json", "robots.txt")  # optouts.source
TDMREP_PATH = "/.well-known/tdmrep.json"
TDMREP_MAX_BYTES = 1 << 20  # a rules file is a few hundred bytes; a bigger one is not read
# the products whose page opted out after their last stored version (a refresh crawl found it): exports
# leave them out and the download fetches none of their media (docs/compliance.md, "Opt-outs")
OPTED_OUT_PRODUCTS_SQL = ("SELECT o.product_id FROM optouts o JOIN products p USING (product_id) "
                          "WHERE o.scope = 'page' AND o.seen_at > p.crawled_at")
# directives whose own value follows a colon: their name is never a user agent
_VALUED = {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
_EXPANDS = {"none": ("noindex", "nofollow")}


@dataclass(frozen=True)
class OptOut:
    """One opt-out: where it was stated (one of :data:`SOURCES`) and what it said."""

    source: str
    directive: str


def agent_token(user_agent: str) -> str:
    """The product token a User-Agent names itself by: ``m5data/0.1 (+...)`` -> ``m5data``."""
    return re.split(r"[/\s;(]", user_agent.strip(), maxsplit=1)[0].lower()


def robots_directives(values: Iterable[str], agent: str) -> list[str]:
    """The X-Robots-Tag directives of ``values`` (one per header) that apply to ``agent``: those
    no user agent scopes, those scoped to every agent (``*: noai``) and those scoped to ``agent``, with
    or without a version (``m5data: noai``, ``m5data/0.1: noai``); lower case, in order."""
    out = []
    for value in values:
        scope = None  # a scope lasts to the end of its header value, or to the next agent
        for piece in value.split(","):
            name, colon, rest = piece.strip().partition(":")
            name = name.strip().lower()
            if colon and name not in _VALUED and re.fullmatch(r"[\w.\-*/]+", name) and not _is_directive(name):
                scope, piece = name.split("/", 1)[0], rest  # a product token's version does not narrow it
            directive = piece.strip().partition(":")[0].strip().lower()
            if directive and scope in (None, "*", agent):
                out.extend(_EXPANDS.get(directive, (directive,)))
    return out


def _is_directive(name: str) -> bool:
    return name in _VALUED or name in _EXPANDS


def robots_optout(values: Iterable[str], agent: str, wanted: Iterable[str]) -> OptOut | None:
    """The X-Robots-Tag opt-out of a response's header values, or None."""
    wanted = {w.lower() for w in wanted}
    hit = [d for d in dict.fromkeys(robots_directives(values, agent)) if d in wanted]
    return OptOut("x-robots-tag", ", ".join(hit)) if hit else None


def tdm_value(value: str | bytes | None) -> bool | None:
    """A ``tdm-reservation`` value: True (1), False (0), None (absent or neither)."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = (value or "").strip()
    return True if value == "1" else False if value == "0" else None


log = logging.getLogger(__name__)
TDMREP_MAX_RULES = 1_000  # rules read from one file (a real one has a few); those after are ignored
TDMREP_MAX_LOCATION = 1_000  # characters of a rule's location; a longer rule is refused


@dataclass(frozen=True)
class TdmRule:
    location: str
    reserved: bool
    policy: str | None = None

    def matches(self, path: str) -> bool:
        return location_matches(self.location, path)


def location_matches(location: str, path: str) -> bool:
    """Whether a tdmrep.json ``location`` matches ``path`` (a URL's path and query): a prefix of it,
    ``*`` any characters, a final ``$`` its end. No regular expression: the literal pieces between the
    ``*`` are found left to right, each at its first place after the one before (``str.find``; the
    leftmost place leaves the most room to the rest, so it finds a match whenever there is one), the
    last at the very end when the location ends in ``$``. Time linear in the path and the location,
    where a backtracking regex took minutes (issue 76, 4: ``*a*a*a*a*a*a*a*a$`` on a 300-letter path)."""
    anchored = location.endswith("$")
    first, *pieces = (location[:-1] if anchored else location).split("*")
    if not pieces:
        return path == first if anchored else path.startswith(first)
    if not path.startswith(first):
        return False
    pos = len(first)
    *middle, last = pieces
    for piece in middle:
        pos = path.find(piece, pos)
        if pos < 0:
            return False
        pos += len(piece)
    if anchored:
        return len(path) - len(last) >= pos and path.endswith(last)
    return path.find(last, pos) >= 0


class TdmRules(list):
    """:func:`tdmrep_rules`' answer: the rules read (a list of :class:`TdmRule`), and ``refused``: why
    some were not (empty when none were left out)."""

    refused: tuple[str, ...] = ()


def tdmrep_rules(body: bytes) -> list[TdmRule]:
    """The rules of a ``tdmrep.json`` body; raises ValueError (saying why) when it is not one. At most
    :data:`TDMREP_MAX_RULES` rules, in the file's order, each location at most :data:`TDMREP_MAX_LOCATION`
    characters: the rules beyond are ignored and a longer one is refused, each logged as a warning
    (and in the answer's ``refused``), so that no file makes a page's check cost more than that."""
    if len(body) > TDMREP_MAX_BYTES:
        raise ValueError(f"over {TDMREP_MAX_BYTES:,} bytes")
    data = json.loads(body.decode("utf-8-sig"))
    if not isinstance(data, list):
        raise ValueError("not a JSON array of rules")
    rules, too_long, beyond = TdmRules(), [], 0
    for rule in data:
        if isinstance(rule, dict) and isinstance(rule.get("location"), str):
            reserved = tdm_value(str(rule.get("tdm-reservation", "")))
            if reserved is None:
                continue
            if len(rules) == TDMREP_MAX_RULES:
                beyond += 1
            elif len(rule["location"]) > TDMREP_MAX_LOCATION:
                too_long.append(rule["location"])
            else:
                policy = rule.get("tdm-policy")
                rules.append(TdmRule(rule["location"], reserved, policy if isinstance(policy, str) else None))
    rules.refused = tuple(
        [f"location over {TDMREP_MAX_LOCATION:,} characters: {loc[:60]!r}... ({len(loc):,})" for loc in too_long]
        + ([f"{beyond:,} rules after the first {TDMREP_MAX_RULES:,} ignored"] if beyond else []))
    for why in rules.refused:
        log.warning("tdmrep.json rule refused: %s", why)
    return rules


def tdm_optout(header: str | bytes | None, meta: str | None, rules: list[TdmRule] | None, path: str,
               policy: str | bytes | None = None) -> OptOut | None:
    """The TDMRep opt-out of a resource: its page's meta, else its header, else the host's first rule
    matching ``path`` (path and query of its URL); None when not reserved or not said. The spec's
    processing priority (TDMRep, "Processing priority"): a header's value supersedes the file's, and
    the HTML meta's supersedes both. The ``tdm-policy`` the resource (``policy``: its meta's, else its
    header's) or the rule states is recorded in the directive: ``tdm-reservation: 1 (tdm-policy URL)``."""
    for source, value in (("tdm-meta", meta), ("tdm-header", header)):
        said = tdm_value(value)
        if said is not None:
            policy = policy.decode("latin-1") if isinstance(policy, bytes) else policy
            return OptOut(source, "tdm-reservation: 1" + (f" (tdm-policy {policy.strip()})" if policy else "")) if said else None
    for rule in rules or ():
        if rule.matches(path):
            said = f"location {rule.location}" + (f"; tdm-policy {rule.policy}" if rule.policy else "")
            return OptOut("tdmrep.json", f"tdm-reservation: 1 ({said})") if rule.reserved else None
    return None
