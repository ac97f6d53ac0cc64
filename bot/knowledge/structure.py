"""Tables and lists as units of meaning: a table row becomes one sentence that names its columns
("Meal: Lunch; Maximum claim: £11.40."), and a list item its own paragraph.

A document's facts often sit in tables and lists. Read as prose, a whole table collapses into
one "sentence" without a full stop, so neither the search by meaning nor the answer-sentence
choice can tell its rows apart, and a row's cells lose the header that says what they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_END = ".!?:;"


def row_sentences(rows: Sequence[Sequence[str]]) -> list[str]:
    """One sentence per data row of a table whose first row is its header: each cell after its
    column's name ("Day: Sunday; Multiplier: 2x."). A table of one row is that row."""
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body:
        return [_sentence(" | ".join(cell for cell in header if cell))]
    found = []
    for row in body:
        cells = [
            f"{name}: {cell}" if name and name != cell else cell
            for name, cell in zip([*header, *[""] * len(row)], row, strict=False)
            if cell
        ]
        if cells:
            found.append(_sentence("; ".join(dict.fromkeys(cells))))  # merged cells repeat
    return found


def _sentence(text: str) -> str:
    return text if not text or text[-1] in _END else f"{text}."


def _table_cells(line: str) -> list[str]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in inner.split("|")]


def markdown_blocks(text: str) -> str:
    """Markdown text with each pipe table's rows as sentences (`row_sentences`) and each list
    item as a paragraph of its own; other lines as they were."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if (
            "|" in line
            and index + 1 < len(lines)
            and _TABLE_RULE.match(lines[index + 1])
            and "|" in lines[index + 1]
        ):
            rows = [_table_cells(line)]
            index += 2
            while index < len(lines) and "|" in lines[index] and lines[index].strip():
                rows.append(_table_cells(lines[index]))
                index += 1
            out += ["", "\n\n".join(row_sentences(rows)), ""]
            continue
        if _LIST_ITEM.match(line):
            out += ["", line]
        else:
            out.append(line)
        index += 1
    return "\n".join(out)
