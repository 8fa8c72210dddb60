"""HTML of the report: escaped text, figures as <img> of local SVG files, numbers as tagged spans.

Every number the page states about the store is written as ``<span class="n" data-key=KEY
data-value=RAW>`` so that a test (or a reader's script) can check it against SQL.

Everything the page shows from the store, a review file or a run folder is untrusted (captions come
from web pages, a store or run folder may come from someone else). Markup is therefore a type of
its own, :class:`Html`, made only by this module's builders; any other value put into a page is
text and is escaped (:func:`text`), whatever it starts with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape, unescape

from ..egress import gate

CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans",system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#1f3b5c;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85;font-size:13px}nav{padding:8px 28px;background:#e9eef4;font-size:13px}
nav a{margin-right:14px;color:#1f3b5c}main{padding:8px 28px 40px;max-width:1100px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:14px 18px;margin:16px 0}
h2{font-size:18px;margin:0 0 8px}h3{font-size:14px;margin:14px 0 6px}
.n{font-weight:600;font-variant-numeric:tabular-nums}.empty{color:#8a5a00;background:#fff7e6;padding:8px 10px;border-radius:4px}
code{background:#f1f1f1;padding:1px 4px;border-radius:3px}figure{margin:8px 0}figure img{max-width:100%}
figcaption{font-size:12px;color:#444}table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f4f6f8}
td.r{text-align:right}.cards{display:flex;flex-wrap:wrap;gap:12px}.card{width:320px;border:1px solid #e3e3e3;border-radius:6px;padding:8px}
.card img.main{width:100%;max-height:240px;object-fit:contain;background:#f4f4f4}.frames img{width:24%;margin-right:1%}
.card .title{font-size:13px;margin:6px 0}.card .cat{font-size:11px;color:#666}.muted{color:#666;font-size:12px}
"""


class Html(str):
    """Markup this module made. Joined with anything that is not Html, the other side is escaped."""

    __slots__ = ()

    def __add__(self, other) -> Html:
        return Html(str.__add__(self, text(other)))

    def __radd__(self, other) -> Html:
        return Html(str.__add__(text(other), self))


def text(value) -> Html:
    """A value as page text: Html as it is, anything else (None as empty) through the egress gate's masking
    (a title, a category, a spec: every text of the store the page shows) and escaped, quotes included."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html()
    value = str(value) if isinstance(value, (int, float)) else gate.text(str(value))
    return Html(escape(value, quote=True))


def html(template: str, *args, **kwargs) -> Html:
    """``template`` (the report's own markup, never data) filled with escaped arguments."""
    return Html(template.format(*(text(a) for a in args), **{k: text(v) for k, v in kwargs.items()}))


def join(parts: Iterable, sep: str | Html = "") -> Html:
    """Parts joined by ``sep``; every part and the separator that is not Html is escaped."""
    return Html(text(sep).join(text(p) for p in parts))


def n(key: str, value: int | float, fmt: str | None = None) -> Html:
    """A number the page states, tagged with its key and raw value."""
    shown = format(value, fmt) if fmt else (f"{value:,}" if isinstance(value, int) else f"{value:,.3f}")
    return html('<span class="n" data-key="{}" data-value="{}">{}</span>', key, value, shown)


def pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def empty(message: str, command: str) -> Html:
    """Guidance for a section whose tables are empty: what fills it."""
    return html('<p class="empty">{} Run <code>{}</code> to fill this section.</p>', message, command)


def figure(src: str | None, caption: str | Html) -> Html:
    """A local SVG figure with its caption (text, or Html made here for tagged numbers)."""
    if not src:
        return Html()
    return html('<figure><img src="figures/{}" alt="{}"><figcaption>{}</figcaption></figure>',
                src, _plain(caption), caption)


def _plain(value: str | Html) -> str:
    """The text of a caption for an ``alt`` attribute (markup stripped; numbers keep their shown text)."""
    return unescape(re.sub(r"<[^>]*>", "", value)) if isinstance(value, Html) else value


def cell(value) -> Html:
    """A table cell's content: Html as it is; an int with thousands separators; anything else as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return text(f"{value:,}")
    return text(value)


def table(header: list[str], rows: list[list], numeric: set[int] | None = None) -> Html:
    numeric = numeric or set()
    head = join(html("<th>{}</th>", h) for h in header)
    body = join(html("<tr>{}</tr>", join(html('<td class="r">{}</td>' if i in numeric else "<td>{}</td>", cell(v))
                                          for i, v in enumerate(row)))
                for row in rows)
    return html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def section(anchor: str, title: str, body: Html) -> Html:
    return html('<section id="{}"><h2>{}</h2>{}</section>', anchor, title, body)


def document(title: str, subtitle: str, sections: list[tuple[str, str, Html]]) -> Html:
    nav = join(html('<a href="#{}">{}</a>', a, t) for a, t, _ in sections)
    body = join(section(a, t, b) for a, t, b in sections)
    return html(
        '<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        "<style>{css}</style></head><body><header><h1>{title}</h1><p>{subtitle}</p></header>"
        "<nav>{nav}</nav><main>{body}</main></body></html>\n",
        title=title, subtitle=subtitle, nav=nav, body=body, css=Html(CSS))
