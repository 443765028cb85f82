"""One self-contained HTML page: text, tables of thumbnails and PNG figures, all embedded; nothing runs, nothing loads.

Every string that comes from the user (paths, class names) is escaped, so a file named
`<script>alert(1)</script>.jpg` shows as that text. The page carries a Content-Security-Policy that allows
no script and no network at all: only inline styles and data: images.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top;
text-align: left; } figure { display: inline-block; margin: 0; max-width: 140px; }
figcaption { font-size: 0.75em; word-break: break-all; color: #555; } .missing { width: 128px; height: 64px;
background: #f3f3f3; font-size: 0.75em; padding: 4px; } .warn { color: #a40; font-weight: bold; } .more { color: #555; }
"""


@dataclass(frozen=True)
class Thumb:
    """An image cell: the JPEG bytes (None when unreadable: the caption alone is shown) and its caption."""

    jpeg: bytes | None
    caption: str


@dataclass
class Section:
    """A titled table; `more` rows beyond the ones shown are counted and pointed to in `csv_name` (if any)."""

    title: str
    columns: list[str]
    rows: list[list[str | Thumb]] = field(default_factory=list)
    more: int = 0
    csv_name: str = ""
    note: str = ""


@dataclass
class Figure:
    """A titled PNG, embedded."""

    title: str
    png: bytes
    note: str = ""


def _text(value: str) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: str | Thumb) -> str:
    if not isinstance(value, Thumb):
        return _text(value)
    if value.jpeg is None:
        return (
            f'<figure><div class="missing">not readable</div><figcaption>{_text(value.caption)}</figcaption></figure>'
        )
    data = base64.b64encode(value.jpeg).decode("ascii")
    return (
        f'<figure><img src="data:image/jpeg;base64,{data}" alt="{_text(value.caption)}">'
        f"<figcaption>{_text(value.caption)}</figcaption></figure>"
    )


def _where(section: Section) -> str:
    return f" in {_text(section.csv_name)}" if section.csv_name else ""


def _section(section: Section) -> str:
    parts = [f"<h2>{_text(section.title)}</h2>"]
    if section.note:
        parts.append(f"<p>{_text(section.note)}</p>")
    if not section.rows:
        parts.append(
            f'<p class="more">{section.more} found, none shown here{_where(section)}.</p>'
            if section.more
            else "<p>None found.</p>"
        )
        return "\n".join(parts)
    header = "".join(f"<th>{_text(column)}</th>" for column in section.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(cell)}</td>" for cell in row) + "</tr>" for row in section.rows)
    parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>\n{body}\n</tbody></table>")
    if section.more:
        parts.append(f'<p class="more">{section.more} more{_where(section)}</p>')
    return "\n".join(parts)


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    note = f"<p>{_text(figure.note)}</p>" if figure.note else ""
    return f'<h2>{_text(figure.title)}</h2>{note}<img src="data:image/png;base64,{data}" alt="{_text(figure.title)}">'


def render_page(title: str, summary: list[str], warnings: list[str], parts: list[Section | Figure]) -> str:
    """The whole page as one string."""
    body = [f"<h1>{_text(title)}</h1>"]
    body += [f'<p class="warn">{_text(line)}</p>' for line in warnings]
    body += [f"<p>{_text(line)}</p>" for line in summary]
    body += [_figure(part) if isinstance(part, Figure) else _section(part) for part in parts]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{_text(title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
