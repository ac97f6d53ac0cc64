"""Readers of office formats: PDF (pypdf) and Word .docx (python-docx).

PDF streams are held to pypdf's own output limits (75 MB a stream by default); a .docx is refused
when its parts unpack past `ReadLimits.max_unpacked_bytes`, before python-docx reads it.
"""

from __future__ import annotations

import io
import re

from bot.knowledge.document import (
    MB,
    HeadingPath,
    ParsedDocument,
    ReadLimits,
    Section,
    UnreadableDocument,
)
from bot.knowledge.structure import row_sentences


def read_pdf(data: bytes, fallback_title: str, limits: ReadLimits | None = None) -> ParsedDocument:
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


def check_unpacked_size(data: bytes, limit: int) -> None:
    """Refuse the zip archive `data` (UnreadableDocument) when its members unpack to more than
    `limit` bytes all together: first by the sizes its directory declares, then by inflating
    each member a megabyte at a time and counting, stopping as soon as the count passes `limit`
    (a member may hold more than it declares). Nothing is kept; zipfile raises on a damaged
    archive."""
    import zipfile

    def refuse() -> UnreadableDocument:
        return UnreadableDocument(
            f"unpacks to more than {limit / MB:.0f} MB (BOTLOOM_KNOWLEDGE_MAX_UNPACKED_MB)"
        )

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if sum(member.file_size for member in members) > limit:
            raise refuse()
        unpacked = 0
        for member in members:
            with archive.open(member) as part:
                while piece := part.read(MB):
                    unpacked += len(piece)
                    if unpacked > limit:
                        raise refuse()


def read_docx(data: bytes, fallback_title: str, limits: ReadLimits | None = None) -> ParsedDocument:
    """Paragraphs and tables in reading order (a table's rows as sentences naming their columns,
    bot/knowledge/structure.py); "Title" and "Heading n" styles make headings. Refused, before
    python-docx reads it, when its parts unpack past `limits.max_unpacked_bytes`."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table as DocxTable

    try:
        check_unpacked_size(data, (limits or ReadLimits()).max_unpacked_bytes)
        document = docx.Document(io.BytesIO(data))
    except UnreadableDocument:
        raise
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

    for block in document.iter_inner_content():  # paragraphs and tables in reading order
        if isinstance(block, DocxTable):  # its rows as sentences, in the section it sits in
            body.extend(row_sentences([[c.text for c in row.cells] for row in block.rows]))
            continue
        text = block.text.strip()
        style = (block.style.name if block.style is not None else "") or ""
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
    return ParsedDocument(title or fallback_title, sections)
