"""Site adapters: one small class per site, found by name (``--site``) or by the page's host.

Adding a site: subclass :class:`SiteAdapter` in a module of this package, add it to
``ADAPTERS`` below, and add a saved-page test.
"""

from __future__ import annotations

from ...errors import UserError
from .alibaba import TaobaoAdapter, TmallAdapter
from .aliexpress import AliExpressAdapter
from .amazon import AmazonAdapter
from .base import SiteAdapter
from .jd import JDAdapter
from .shopa import ShopAAdapter
from .shopb import ShopBAdapter

# order matters for template recognition: the demo shop's platforms (whose templates imitate Tmall
# and JD) are recognised by their own markers before the real platforms' adapters look
ADAPTERS: dict[str, type[SiteAdapter]] = {
    cls.name: cls for cls in (SiteAdapter, AmazonAdapter, AliExpressAdapter, ShopAAdapter, ShopBAdapter,
                              TmallAdapter, TaobaoAdapter, JDAdapter)
}


class UnknownSite(UserError, ValueError):
    """A ``--site`` name that no adapter has."""


def get_adapter(name: str) -> SiteAdapter:
    """The adapter called ``name`` (``generic`` = schema.org only)."""
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise UnknownSite(f"unknown site {name!r} (known: {', '.join(sorted(ADAPTERS))})") from None


class AdapterChooser:
    """Picks a page's adapter: the forced one (``--site``), else the first whose host pattern
    matches the URL, else the first that recognises the page's template, else generic."""

    def __init__(self, site: str | None = None):
        self.forced = get_adapter(site) if site else None
        self.instances = [cls() for name, cls in ADAPTERS.items() if name != "generic"]
        self.generic = SiteAdapter()

    def __call__(self, url: str, response=None) -> SiteAdapter:
        if self.forced is not None:
            return self.forced
        for adapter in self.instances:
            if adapter.matches(url):
                return adapter
        if response is not None:
            for adapter in self.instances:
                if adapter.recognises(response):
                    return adapter
        return self.generic


__all__ = ["ADAPTERS", "AdapterChooser", "SiteAdapter", "UnknownSite", "get_adapter"]
