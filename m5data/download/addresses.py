"""Which addresses are public: the one rule the download and the crawl share for IP addresses.

Its own module, without aiohttp (``safety.py`` builds the downloader's resolver on it): the crawl's
subprocess imports this rule and not the HTTP client (~0.2 CPU-s a crawl).
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_public"]


def is_public(address: str) -> bool:
    """True for a globally routable address; False for private, loopback, link-local and the like."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)
