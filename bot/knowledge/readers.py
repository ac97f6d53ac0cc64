"""Readers: a file's bytes in, its title and structured sections (heading, page) out.

Markdown, plain text, HTML, PDF (pypdf) and Word .docx (python-docx); all pure Python, no
services. A file that cannot be read raises UnreadableDocument with a short reason.

Reading is bounded by the input, whatever it holds: every pattern here runs in time linear in
the text (no nested or overlapping quantifiers), a .docx is refused when its parts unpack past
`ReadLimits.max_unpacked_bytes`, and PDF streams are held to pypdf's own output limits (75 MB a
stream by default). The time a parse may take is bounded by the caller (bot/knowledge/parsing.py
runs readers in a worker process and kills it at a deadline).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from bot.knowledge.document import (
    MB,
    HeadingPath,
    ParsedDocument,
    Reader,
    ReadLimits,
    Section,
    UnreadableDocument,
)
from bot.knowledge.office_readers import check_unpacked_size, read_docx, read_pdf
from bot.knowledge.structure import markdown_blocks, row_sentences

__all__ = [
    "MB",
    "READERS",
    "HeadingPath",
    "ParsedDocument",
    "ReadLimits",
    "Reader",
    "Section",
    "UnreadableDocument",
    "check_unpacked_size",
    "read_document",
    "read_docx",
    "read_pdf",
    "reader_for",
]


def reader_for(path: Path) -> Reader:
    """The reader for `path`'s extension (UnreadableDocument when there is none)."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableDocument(f"unsupported file type {path.suffix or '(none)'}")
    return reader


def read_document(path: Path, data: bytes, limits: ReadLimits | None = None) -> ParsedDocument:
    """Parse `data` (the content of `path`) by the file's extension."""
    return read_with(reader_for(path), data, path.stem, limits or ReadLimits())


def read_with(
    reader: Reader, data: bytes, fallback_title: str, limits: ReadLimits
) -> ParsedDocument:
    """`reader` on `data`; empty input and a document without text raise UnreadableDocument."""
    if not data.strip():
        raise UnreadableDocument("empty file")
    document = reader(data, fallback_title, limits)
    if not any(section.text.strip() for section in document.sections):
        raise UnreadableDocument("no text in it")
    return document


def decode_text(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else Windows-1252; binary content raises UnreadableDocument."""
    sample = data[:65536]
    if b"\x00" in sample:
        raise UnreadableDocument("binary content, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > len(text[:65536]) * 0.01 or text.count("\ufffd") > len(text) * 0.01:
        raise UnreadableDocument("binary content, not text")
    return text


def markdown_heading(line: str) -> tuple[int, str] | None:
    """(level, text) when `line` is an ATX heading: 1-6 `#` at the start, whitespace, the text,
    then optionally a closing run of `#`; None otherwise. Linear in the line's length (string
    methods, no backtracking pattern)."""
    level = len(line) - len(line.lstrip("#"))
    if not 1 <= level <= 6:
        return None
    rest = line[level:]
    text = rest.lstrip()
    if len(text) == len(rest):  # no whitespace after the #s
        return None
    if not text:  # only whitespace: a heading with no text when there are two or more
        return (level, "") if len(rest) >= 2 else None
    core = text.rstrip().rstrip("#").rstrip()
    return level, text[: max(1, len(core))].strip()


def read_markdown(
    data: bytes, fallback_title: str, limits: ReadLimits | None = None
) -> ParsedDocument:
    """Sections start at ATX headings (`#`..`######`); the heading path keeps the parents. Tables
    and lists become units of their own (bot/knowledge/structure.py); code blocks stay as they
    are."""
    text = decode_text(data)
    title = ""
    path = HeadingPath()
    sections: list[Section] = []
    lines: list[str] = []
    in_code = False

    def flush() -> None:
        body = markdown_blocks("\n".join(lines)).strip()
        if body:
            sections.append(Section(body, path.text()))
        lines.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        heading_line = None if in_code else markdown_heading(line)
        if heading_line is None:
            lines.append(line)
            continue
        flush()
        level, heading = heading_line
        if level == 1 and not title and not sections:
            title = heading  # the title, not a heading of the path
            continue
        path.enter(level, heading)
    flush()
    return ParsedDocument(title or fallback_title, sections)


def read_plain_text(
    data: bytes, fallback_title: str, limits: ReadLimits | None = None
) -> ParsedDocument:
    """Paragraphs split on blank lines; a short line standing alone (no final period) is a
    heading, and the first one is the title."""
    text = decode_text(data)
    title = ""
    heading = ""
    sections: list[Section] = []
    body: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if "\n" not in paragraph and len(paragraph.split()) <= 8 and paragraph[-1] not in ".:;,!?":
            if body:
                sections.append(Section("\n\n".join(body), heading))
                body = []
            if not title and not sections:
                title = paragraph
            else:
                heading = paragraph
            continue
        body.append(paragraph)
    if body:
        sections.append(Section("\n\n".join(body), heading))
    return ParsedDocument(title or fallback_title, sections)


_BLOCKS = {"p", "div", "li", "tr", "br", "section", "article", "table", "ul", "ol", "pre",
           "blockquote", "dd", "dt", "td", "th"}  # fmt: skip
_SKIPPED = {"script", "style", "noscript", "template", "svg", "head"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_TABLE_TAGS = {"table", "tr", "td", "th"}  # a table's rows as sentences (structure.py)


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[Section] = []
        self._path = HeadingPath()
        self._parts: list[str] = []
        self._skip = 0
        self._in_title = False
        self._heading_level = 0
        self._heading_text: list[str] = []
        self._rows: list[list[str]] | None = None  # of the table being read (not nested ones)
        self._cell: list[str] | None = None
        self._tables = 0  # depth of nested tables

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            self._skip += 1
        elif tag in _TABLE_TAGS and not self._skip:
            self._table_start(tag)
        elif tag in _HEADINGS and not self._skip:
            self._flush()
            self._heading_level = int(tag[1])
            self._heading_text = []
        elif tag in _BLOCKS:
            self._parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _TABLE_TAGS and not self._skip:
            self._table_end(tag)
        elif tag in _HEADINGS and self._heading_level:
            heading = " ".join("".join(self._heading_text).split())
            level, self._heading_level = self._heading_level, 0
            if level == 1 and not self.sections and not self._parts_text():
                self.title = self.title or heading
                return
            self._path.enter(level, heading)
        elif tag in _BLOCKS:
            self._parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif self._heading_level:
            self._heading_text.append(data)
        elif self._cell is not None and not self._skip:
            self._cell.append(data)
        elif not self._skip:
            self._parts.append(data)

    def _table_start(self, tag: str) -> None:
        if tag == "table":
            self._tables += 1
            if self._tables == 1:
                self._rows, self._cell = [], None
        elif self._rows is not None and self._tables == 1:
            if tag == "tr":
                self._rows.append([])
            elif self._rows:  # td, th
                self._cell = []

    def _table_end(self, tag: str) -> None:
        if tag == "table":
            self._tables = max(0, self._tables - 1)
            if self._tables == 0 and self._rows is not None:
                rows, self._rows, self._cell = self._rows, None, None
                self._parts.append("\n\n" + "\n\n".join(row_sentences(rows)) + "\n\n")
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def _parts_text(self) -> str:
        paragraphs = re.split(r"\n\s*\n", "".join(self._parts))
        return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())

    def _flush(self) -> None:
        text = self._parts_text()
        if text:
            self.sections.append(Section(text, self._path.text()))
        self._parts = []

    def close(self) -> None:
        super().close()
        self._flush()


def read_html(data: bytes, fallback_title: str, limits: ReadLimits | None = None) -> ParsedDocument:
    """Visible text only (no script, style or head); sections start at <h1>..<h6>; a table's
    rows as sentences naming their columns (bot/knowledge/structure.py)."""
    parser = _HtmlText()
    parser.feed(decode_text(data))
    parser.close()
    return ParsedDocument(parser.title or fallback_title, parser.sections)


READERS: dict[str, Reader] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_plain_text,
    ".text": read_plain_text,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
}
