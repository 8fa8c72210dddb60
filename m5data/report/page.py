"""HTML of the report: escaped text, figures as <img> of local SVG files, numbers as tagged spans.

Every number the page states about the store is written as ``<span class="n" data-key=KEY
data-value=RAW>`` so that a test (or a reader's script) can check it against SQL. Product text is
untrusted (captions come from web pages): everything is escaped with :func:`html.escape`.
"""

from __future__ import annotations

from html import escape

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


def n(key: str, value: int | float, fmt: str | None = None) -> str:
    """A number the page states, tagged with its key and raw value."""
    text = format(value, fmt) if fmt else (f"{value:,}" if isinstance(value, int) else f"{value:,.3f}")
    return f'<span class="n" data-key="{escape(key)}" data-value="{escape(str(value))}">{text}</span>'


def pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def empty(message: str, command: str) -> str:
    """Guidance for a section whose tables are empty: what fills it."""
    return f'<p class="empty">{escape(message)} Run <code>{escape(command)}</code> to fill this section.</p>'


def figure(src: str | None, caption: str) -> str:
    if not src:
        return ""
    return f'<figure><img src="figures/{escape(src)}" alt="{escape(caption, quote=True)}"><figcaption>{caption}</figcaption></figure>'


def table(header: list[str], rows: list[list], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            raw = value if isinstance(value, str) and value.startswith("<span") else escape("" if value is None else
                                                                                           (f"{value:,}" if isinstance(value, int) else str(value)))
            cells.append(f'<td class="r">{raw}</td>' if i in numeric else f"<td>{raw}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{body}</section>'


def document(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
