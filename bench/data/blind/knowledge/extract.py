#!/usr/bin/env python3
"""Print the plain text of every document in docs/ (used by check_set.py and for word counts)."""
import re, html, sys
from pathlib import Path
from pypdf import PdfReader
from docx import Document

DOCS = Path(__file__).resolve().parent / "docs"

def text_of(path: Path) -> str:
    if path.suffix == ".pdf":
        return "\n".join(p.extract_text() for p in PdfReader(str(path)).pages)
    if path.suffix == ".docx":
        d = Document(str(path))
        parts = [p.text for p in d.paragraphs]
        for t in d.tables:
            for row in t.rows:
                parts.append(" | ".join(c.text for c in row.cells))
        return "\n".join(parts)
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        raw = re.sub(r"<[^>]+>", " ", raw)
        raw = html.unescape(raw)
    return raw

def all_docs():
    return {p.name: text_of(p) for p in sorted(DOCS.iterdir()) if p.suffix in {".md", ".html", ".pdf", ".docx"}}

if __name__ == "__main__":
    for name, t in all_docs().items():
        print(f"{name}: {len(re.findall(r'[A-Za-z0-9£%.,:/+-]+', t))} words")
