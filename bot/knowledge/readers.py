"""Readers: a file's bytes in, its title and structured sections (heading, page) out.

Markdown, plain text, HTML, PDF (pypdf) and Word .docx (python-docx); all pure Python, no
services. A file that cannot be read raises UnreadableDocument with a short reason.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path


class UnreadableDocument(Exception):
    """The file is not a document we can read; the message says why, for one log line."""


@dataclass(frozen=True)
class Section:
    """A run of text under one heading (a heading path such as "Holidays") or on one page."""

    text: str
    heading: str = ""
    page: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    sections: list[Section]


def read_document(path: Path, data: bytes) -> ParsedDocument:
    """Parse `data` (the content of `path`) by the file's extension."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableDocument(f"unsupported file type {path.suffix or '(none)'}")
    if not data.strip():
        raise UnreadableDocument("empty file")
    document = reader(data, path.stem)
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


class HeadingPath:
    """The headings above the current line: entering level n leaves every heading at n or below."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, heading: str) -> None:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, heading))

    def text(self) -> str:
        return " > ".join(heading for _, heading in self._stack)


_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def read_markdown(data: bytes, fallback_title: str) -> ParsedDocument:
    """Sections start at ATX headings (`#`..`######`); the heading path keeps the parents."""
    text = decode_text(data)
    title = ""
    path = HeadingPath()
    sections: list[Section] = []
    lines: list[str] = []
    in_code = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(Section(body, path.text()))
        lines.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        match = None if in_code else _ATX.match(line)
        if match is None:
            lines.append(line)
            continue
        flush()
        level, heading = len(match.group(1)), match.group(2).strip()
        if level == 1 and not title and not sections:
            title = heading  # the title, not a heading of the path
            continue
        path.enter(level, heading)
    flush()
    return ParsedDocument(title or fallback_title, sections)


def read_plain_text(data: bytes, fallback_title: str) -> ParsedDocument:
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

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            self._skip += 1
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
        elif not self._skip:
            self._parts.append(data)

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


def read_html(data: bytes, fallback_title: str) -> ParsedDocument:
    """Visible text only (no script, style or head); sections start at <h1>..<h6>."""
    parser = _HtmlText()
    parser.feed(decode_text(data))
    parser.close()
    return ParsedDocument(parser.title or fallback_title, parser.sections)


def read_pdf(data: bytes, fallback_title: str) -> ParsedDocument:
    """One section per page. An encrypted PDF opens only with an empty password."""
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except UnreadableDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise UnreadableDocument(f"not a readable PDF ({type(error).__name__})") from None
    except Exception as error:  # pypdf raises assorted errors on damaged files
        if "crypt" in str(error).lower():
            raise UnreadableDocument("encrypted PDF (unsupported encryption)") from None
        raise UnreadableDocument(f"not a readable PDF ({type(error).__name__})") from None
    sections = [Section(text.strip(), "", number) for number, text in enumerate(pages, 1)]
    sections = [s for s in sections if s.text]
    if not sections:
        raise UnreadableDocument("no text in the PDF (a scanned document?)")
    return ParsedDocument(str(metadata_title).strip() or fallback_title, sections)


def read_docx(data: bytes, fallback_title: str) -> ParsedDocument:
    """Paragraphs and table rows; "Title" and "Heading n" styles make headings."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError) as error:
        raise UnreadableDocument(f"not a readable .docx ({type(error).__name__})") from None
    except Exception as error:  # lxml and zipfile raise assorted errors on damaged files
        raise UnreadableDocument(f"not a readable .docx ({type(error).__name__})") from None
    title = (document.core_properties.title or "").strip()
    path = HeadingPath()
    sections: list[Section] = []
    body: list[str] = []

    def flush() -> None:
        if body:
            sections.append(Section("\n\n".join(body), path.text()))
            body.clear()

    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if not text:
            continue
        if style == "Title":
            title = title or text
            continue
        match = re.fullmatch(r"Heading (\d)", style)
        if match:
            flush()
            path.enter(int(match.group(1)), text)
            continue
        body.append(text)
    flush()
    for table in document.tables:
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        if rows:
            sections.append(Section("\n".join(rows), "table"))
    return ParsedDocument(title or fallback_title, sections)


READERS: dict[str, Callable[[bytes, str], ParsedDocument]] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_plain_text,
    ".text": read_plain_text,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
}
