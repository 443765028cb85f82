"""One self-contained HTML page: text, tables of thumbnails and PNG figures, all embedded; nothing loads.

Every string that comes from the user (paths, class names) is escaped, so a file named
`<script>alert(1)</script>.jpg` shows as that text. The page carries a Content-Security-Policy that allows no
network at all: only inline styles and data: images; and no script, except on an interactive page (the audit's
report) the one script of heads/pages/interactive.py, allowed by its sha256 (sorting, filtering, saving
decisions.csv through a Blob download, drawing the dataset map's <canvas>). A thumbnail links to its full-size file;
a page of several sections opens with a table of contents linking to each, and its tables take the window's width.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from headstart.heads.pages.interactive import SCRIPT, SOURCE, script_hash

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top;
text-align: left; } figure { display: inline-block; margin: 0; max-width: 140px; }
figcaption { font-size: 0.75em; word-break: break-all; color: #555; } .missing { width: 128px; height: 64px;
background: #f3f3f3; font-size: 0.75em; padding: 4px; } .warn { color: #a40; font-weight: bold; } .more { color: #555; }
table.hs th { cursor: pointer; background: #f6f6f6; position: sticky; top: 0; }
.hs-filter { margin: 0.3em 0; width: 20em; }
.bar { position: sticky; top: 0; background: #fff; padding: 0.4em 0; z-index: 1; }
table.hs { width: 100%; } nav.toc { margin: 0.6em 0; } nav.toc a { margin-right: 1em; white-space: nowrap; }
.hs-map { display: flex; gap: 1em; align-items: flex-start; } #hs-map { border: 1px solid #ddd; cursor: crosshair; }
#hs-map-pick { max-width: 240px; word-break: break-all; font-size: 0.85em; } #hs-map-legend { list-style: none;
padding: 0; } #hs-map-legend li { display: inline-block; margin-right: 1em; } .swatch { display: inline-block;
width: 0.8em; height: 0.8em; margin-right: 0.3em; }
"""


@dataclass(frozen=True)
class Thumb:
    """An image cell: the JPEG bytes (None when unreadable: the caption alone is shown) and its caption."""

    jpeg: bytes | None
    caption: str
    href: str = ""  # the full-size image, one click away (a file: URI); empty: no link


@dataclass(frozen=True)
class Choice:
    """A finding's decision cell: a menu of (shown text, action, argument) for the image at path (features/decisions/
    formats.py); the page's button saves the chosen ones as decisions.csv."""

    path: str
    sha256: str
    options: list[tuple[str, str, str]]


@dataclass
class Section:
    """A titled table; `more` rows beyond the ones shown are counted and pointed to in `csv_name` (if any)."""

    title: str
    columns: list[str]
    rows: Sequence[Sequence[str | Thumb | Choice]] = field(default_factory=list)
    more: int = 0
    csv_name: str = ""
    note: str = ""


@dataclass(frozen=True)
class Block:
    """A titled part already rendered to HTML by the module that builds it, which escapes what it shows (the
    dataset map: heads/pages/map_view.py)."""

    title: str
    html: str


@dataclass
class Figure:
    """A titled PNG, embedded."""

    title: str
    png: bytes
    note: str = ""


def _text(value: str) -> str:
    return html.escape(str(value), quote=True)


def _choice(choice: Choice) -> str:
    options = "".join(
        f'<option value="{index}" data-action="{_text(action)}" data-argument="{_text(argument)}">'
        f"{_text(shown)}</option>"
        for index, (shown, action, argument) in enumerate(choice.options, start=1)
    )
    return (
        f'<select class="hs-choice" data-path="{_text(choice.path)}" data-sha256="{_text(choice.sha256)}">'
        f'<option value="">no decision</option>{options}</select>'
    )


def _cell(value: str | Thumb | Choice) -> str:
    if isinstance(value, Choice):
        return _choice(value)
    if not isinstance(value, Thumb):
        return _text(value)
    if value.jpeg is None:
        return (
            f'<figure><div class="missing">not readable</div><figcaption>{_text(value.caption)}</figcaption></figure>'
        )
    data = base64.b64encode(value.jpeg).decode("ascii")
    image = f'<img src="data:image/jpeg;base64,{data}" alt="{_text(value.caption)}">'
    if value.href:
        image = f'<a href="{_text(value.href)}" title="the full-size image">{image}</a>'
    return f"<figure>{image}<figcaption>{_text(value.caption)}</figcaption></figure>"


def _where(section: Section) -> str:
    return f" in {_text(section.csv_name)}" if section.csv_name else ""


def _heading(title: str, anchor: str) -> str:
    return f'<h2 id="{anchor}">{_text(title)}</h2>' if anchor else f"<h2>{_text(title)}</h2>"


def _section(section: Section, anchor: str = "") -> str:
    parts = [_heading(section.title, anchor)]
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
    parts.append(f'<table class="hs"><thead><tr>{header}</tr></thead><tbody>\n{body}\n</tbody></table>')
    if section.more:
        parts.append(f'<p class="more">{section.more} more{_where(section)}</p>')
    return "\n".join(parts)


def _figure(figure: Figure, anchor: str = "") -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    note = f"<p>{_text(figure.note)}</p>" if figure.note else ""
    return f'{_heading(figure.title, anchor)}{note}<img src="data:image/png;base64,{data}" alt="{_text(figure.title)}">'


def _contents(parts: list[Section | Figure | Block]) -> list[str]:
    """A table of contents, one link per section and figure, when the page has more than one."""
    if len(parts) < 2:
        return []
    links = " ".join(f'<a href="#hs-part-{number}">{_text(part.title)}</a>' for number, part in enumerate(parts, 1))
    return [f'<nav class="toc"><b>Contents:</b> {links}</nav>']


def _part(part: Section | Figure | Block, anchor: str) -> str:
    if isinstance(part, Block):
        return f"{_heading(part.title, anchor)}{part.html}"
    return _figure(part, anchor) if isinstance(part, Figure) else _section(part, anchor)


def _decisions_bar(parts: list[Section | Figure | Block]) -> list[str]:
    """The save button, when some row offers a decision."""
    if not any(
        isinstance(cell, Choice) for part in parts if isinstance(part, Section) for row in part.rows for cell in row
    ):
        return []
    return [
        '<p class="bar"><button id="hs-save" type="button" data-source="'
        + _text(SOURCE)
        + '">Save decisions.csv</button> '
        '<span id="hs-saved"></span> Choose what to do with each finding below, then save; '
        "<code>headstart apply decisions.csv</code> shows what would move, <code>--yes</code> moves it.</p>"
    ]


def render_page(
    title: str,
    summary: list[str],
    warnings: list[str],
    parts: list[Section | Figure | Block],
    interactive: bool = False,
) -> str:
    """The whole page as one string; interactive: with the one script (sorting, filtering, saving decisions), which
    the page's CSP allows by its hash."""
    body = [f"<h1>{_text(title)}</h1>"]
    body += [f'<p class="warn">{_text(line)}</p>' for line in warnings]
    body += [f"<p>{_text(line)}</p>" for line in summary]
    body += _decisions_bar(parts) if interactive else []
    body += _contents(parts)
    body += [_part(part, f"hs-part-{number}") for number, part in enumerate(parts, 1)]
    csp = f"{CSP}; script-src {script_hash()}" if interactive else CSP
    script = f"<script>{SCRIPT}</script>\n" if interactive else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{_text(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n{script}</body></html>\n"
    )
