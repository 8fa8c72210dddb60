"""Why a followed page gave no product: login walls, captcha pages, pages over the size cap.

A shop that walls a crawler off rarely says so with an HTTP error: a product link redirects to its
login page, or answers ``200`` with a captcha or "robot check" page. The spider turns each such page
into one ``crawl_errors`` row whose reason starts with one of a small fixed vocabulary (the part
before the colon is what the run's failures count by, see ``PageError.kind``):

* ``login redirect``: a followed link was redirected to a login / sign-in page (fetched, refused as
  off-site, or disallowed by robots.txt); the row names the link, the reason the login URL;
* ``captcha page``: a page without product that is a captcha, verification or robot-check page;
* ``not a product page``: a link followed as a product (its URL looks like one, see
  ``SiteAdapter.is_product_url``) whose page gave no product (a removed item, a search page);
* ``page too large``: the body was over ``crawl.max_page_bytes``, counted inflated (a gzip page of
  1 MB can inflate to 1 GB); refused before it is parsed.

Pages of the first two kinds are walls: their links are not followed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LOGIN_REDIRECT = "login redirect"
CAPTCHA_PAGE = "captcha page"
NOT_A_PRODUCT = "not a product page"
TOO_LARGE = "page too large"
WALLS = (LOGIN_REDIRECT, CAPTCHA_PAGE)

# hosts such as login.taobao.com, passport.jd.com, signin.aws.amazon.com, accounts.example.com
_LOGIN_HOST = re.compile(r"(?:login|signin|passport|sso|auth|account|accounts)\.", re.I)
# paths such as /account/login, /member/login.jhtml, /ap/signin, /users/sign_in, /new/login.aspx
_LOGIN_PATH = re.compile(r"(?:^|[/_.-])(?:log-?in|log-?on|sign-?in|sign_in|passport|sso|authenticate)(?:$|[/_.;-])", re.I)
# a captcha / verification page: in its <title> ...
_CAPTCHA_TITLE = re.compile(r"robot check|captcha|are you (?:a )?(?:human|robot)|verify (?:that )?you are (?:a )?human|"
                            r"human verification|security check|attention required|just a moment|bot detection|"
                            r"验证码|安全验证|滑动验证|人机验证|访问验证|拦截|ロボット", re.I)
# ... or in its markup: reCAPTCHA, hCaptcha, Cloudflare / DataDome / PerimeterX challenges, Amazon's
# validateCaptcha form, Alibaba's slider ("punish" page, x5sec), GeeTest
_CAPTCHA_MARKUP = re.compile(r"g-recaptcha|recaptcha/api|h-captcha|hcaptcha\.com|/errors/validatecaptcha|captcha-delivery|"
                             r"px-captcha|cf-challenge|challenge-platform|cf_chl_|_____tmd_____|x5secdata|nc_1_wrapper|"
                             r"geetest|turnstile", re.I)
_HEAD = 200_000  # characters of a page searched for captcha markup (they sit near the top)


def is_login_url(url: str) -> bool:
    """Whether ``url`` looks like a login / sign-in page (by host or path)."""
    parts = urlsplit(url)
    return bool(_LOGIN_HOST.match(parts.hostname or "") or _LOGIN_PATH.search(parts.path))


def link_of(request_or_response) -> str:
    """The URL the crawl followed (before redirects)."""
    return (request_or_response.meta.get("redirect_urls") or [request_or_response.url])[0]


def login_redirect(link: str, target: str) -> str | None:
    """The reason for a link redirected to a login page, or None (a link to the login page itself
    is not a wall: it is a link the crawl should not have followed as a product)."""
    if link == target or is_login_url(link) or not is_login_url(target):
        return None
    return f"{LOGIN_REDIRECT}: to {target[:300]}"


def captcha(response, page) -> str | None:
    """The reason for a captcha / verification page (one that gave no product), or None."""
    title = (page.title_tag if page is not None else None) or ""
    if _CAPTCHA_TITLE.search(title):
        return f"{CAPTCHA_PAGE}: title {title[:120]!r}"
    text = getattr(response, "text", "")[:_HEAD]
    if (m := _CAPTCHA_MARKUP.search(text)) is not None:
        return f"{CAPTCHA_PAGE}: the page holds {m.group(0)!r}" + (f" (title {title[:120]!r})" if title else "")
    return None


def too_large(failure, cap: int) -> str | None:
    """The reason for a download refused for its size (``DOWNLOAD_MAXSIZE`` = ``crawl.max_page_bytes``), or None.

    Scrapy refuses in three places: a ``Content-Length`` over the cap (``DownloadCancelledError``),
    a body that grows over it while downloading (``DownloadCancelledError`` without a message; the
    spider counts the bytes received in ``m5data_bytes``), and a compressed body that inflates over it
    (``IgnoreRequest`` from ``HttpCompressionMiddleware``, which stops inflating at the cap).
    """
    from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
    from twisted.internet.defer import CancelledError

    exc = failure.value
    where = f"crawl.max_page_bytes is {cap:,} bytes"
    inflated = getattr(exc.__cause__, "decompressed_size", None)
    if isinstance(exc, IgnoreRequest) and inflated is not None:
        sent = re.search(r"\((\d+) B compressed", str(exc))
        sent_text = f"{int(sent.group(1)):,} bytes compressed, " if sent else ""
        return f"{TOO_LARGE}: {sent_text}over {inflated:,} bytes once inflated (stopped there); {where}"
    if not isinstance(exc, (DownloadCancelledError, CancelledError)):
        return None
    if m := re.search(r"(\d+) bytes which is larger than download max size", str(exc)):
        return f"{TOO_LARGE}: {int(m.group(1)):,} bytes (Content-Length); {where}"
    if (received := failure.request.meta.get("m5data_bytes", 0)) > cap:  # cancelled with no message
        return f"{TOO_LARGE}: over {received:,} bytes received (no Content-Length); {where}"
    return None


def not_a_product(response, page, adapter, link: str) -> str:
    """The reason for a link followed as a product whose page gave no product."""
    from .render import script_driven

    if page is None:
        what = f"the response holds no item the {adapter.name} adapter reads"
    elif page.tree is None:
        what = "the page is not readable HTML"
    else:
        what = "no schema.org Product or og:type product" if adapter.name == "generic" else f"not a {adapter.name} product page"
    details = list(dict.fromkeys(page.problems)) if page is not None else []
    if response.url != link:
        details.append(f"redirected to {response.url[:300]}")
    if not details and page is not None and page.tree is not None and not response.meta.get("m5data_rendered") \
            and script_driven(page):
        details.append("its scripts may fill the product in: crawl with --render")
    return f"{NOT_A_PRODUCT}: {what}" + (f" ({'; '.join(details)})" if details else "")


def walled_note(failures: dict[str, int]) -> str | None:
    """A line for the crawl summary when pages were walled off (a run's ``failures`` by reason), or None."""
    walled = {reason: failures[reason] for reason in WALLS if failures.get(reason)}
    if not walled:
        return None
    n = sum(walled.values())
    counts = ", ".join(f"{reason} {k}" for reason, k in walled.items())
    return (f"{n} page{'s' if n > 1 else ''} walled off ({counts}): the shop may be blocking the crawler; "
            "see crawl_errors")
