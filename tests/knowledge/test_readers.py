"""Readers keep the document's structure: title, headings (as a path), pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge.readers import UnreadableDocument, read_document
from bot.knowledge.structure import row_sentences
from dialogs.text import sentences
from tests.knowledge.conftest import EVAL_DOCS
from tests.knowledge.pdf_files import text_pdf


def read(path: Path) -> tuple[str, list[tuple[str, int | None, str]]]:
    document = read_document(path, path.read_bytes())
    return document.title, [(s.heading, s.page, s.text) for s in document.sections]


def test_markdown_sections_follow_headings_with_their_parents(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "# Guide\n\nIntro.\n\n## Setup\n\nInstall it.\n\n### On Linux\n\nUse apt.\n\n"
        "```\n# not a heading\n```\n\n## Use\n\nRun it.\n"
    )
    title, sections = read(path)
    assert title == "Guide"
    assert [(h, t.splitlines()[0]) for h, _, t in sections] == [
        ("", "Intro."),
        ("Setup", "Install it."),
        ("Setup > On Linux", "Use apt."),
        ("Use", "Run it."),
    ]
    assert "# not a heading" in sections[2][2], "a code block stays in its section"


def test_html_keeps_visible_text_and_headings_only() -> None:
    title, sections = read(EVAL_DOCS / "products.html")
    assert title == "Kestrelmoor product sheet"
    headings = [h for h, _, _ in sections]
    assert headings == ["", "Aurora-3 harbour sensor", "Fieldwren soil probe", "Stormcrest gateway"]
    text = " ".join(t for _, _, t in sections)
    assert "seven years" in text
    assert "tracking" not in text, "script text is not indexed"


def test_plain_text_short_lone_lines_are_headings() -> None:
    title, sections = read(EVAL_DOCS / "runbook.txt")
    assert title == "Kestrelmoor cloud runbook"
    assert [h for h, _, _ in sections][1:] == [
        "On-call rota",
        "Severity levels",
        "Backups",
        "Deployments",
    ]


def test_pdf_has_one_section_per_page_and_its_title(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(text_pdf([["Page one says hello."], ["Page two: the code is ZX-81."]],
                              title="The manual"))  # fmt: skip
    title, sections = read(path)
    assert title == "The manual"
    assert [(p, t) for _, p, t in sections] == [
        (1, "Page one says hello."),
        (2, "Page two: the code is ZX-81."),
    ]


def test_docx_headings_and_core_title() -> None:
    title, sections = read(EVAL_DOCS / "security.docx")
    assert title == "Kestrelmoor security policy"
    assert [h for h, _, _ in sections] == ["Passwords", "Lost devices", "Visitors"]
    assert "Vaultling" in sections[0][2]


def test_text_in_windows_1252_is_read(tmp_path: Path) -> None:
    path = tmp_path / "old.txt"
    path.write_bytes("Caf\xe9 opening hours are 8 to 17.".encode("cp1252"))
    assert "Café" in read(path)[1][0][2]


@pytest.mark.parametrize("name", ["image.png", "noextension"])
def test_unsupported_types_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"data")
    with pytest.raises(UnreadableDocument, match="unsupported file type"):
        read_document(path, b"data")


def test_a_markdown_table_is_read_as_one_sentence_per_row_naming_its_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "overtime.md"
    path.write_text(
        "# Overtime\n\n## Rates\n\nThe rate depends on the day:\n\n"
        "| Day | Multiplier |\n|---|:---:|\n| Saturday | 1.5x |\n| Sunday | 2x |\n\n"
        "Steps:\n\n- Ask the master\n- Record it in Bosun\n",
        "utf-8",
    )
    [(heading, _, text)] = read(path)[1]
    assert heading == "Rates"
    assert sentences(text) == [
        "The rate depends on the day:",
        "Day: Saturday; Multiplier: 1.5x.",
        "Day: Sunday; Multiplier: 2x.",
        "Steps:",
        "- Ask the master",
        "- Record it in Bosun",
    ]


def test_a_docx_table_stays_in_its_section_one_sentence_per_row(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Meals", level=1)
    document.add_paragraph("You may claim meals up to these limits.")
    table = document.add_table(rows=3, cols=2)
    values = [("Meal", "Limit"), ("Lunch", "£11.40"), ("Dinner", "")]
    for row, cells in zip(table.rows, values, strict=True):
        for cell, value in zip(row.cells, cells, strict=True):
            cell.text = value
    document.add_heading("Hotels", level=1)
    document.add_paragraph("Book through the portal.")
    path = tmp_path / "meals.docx"
    document.save(str(path))
    sections = read(path)[1]
    assert [(h, sentences(t)) for h, _, t in sections] == [
        ("Meals", ["You may claim meals up to these limits.", "Meal: Lunch; Limit: £11.40.",
                   "Meal: Dinner."]),
        ("Hotels", ["Book through the portal."]),
    ]  # fmt: skip


def test_row_sentences_of_a_header_alone_and_of_merged_cells() -> None:
    assert row_sentences([["Only", "a header"]]) == ["Only | a header."]
    assert row_sentences([["Kit", "Code", "Code"], ["Boat", "RB5", "RB5"]]) == [
        "Kit: Boat; Code: RB5."
    ]
    assert row_sentences([]) == []


def test_an_html_table_is_read_as_one_sentence_per_row() -> None:
    page = (
        b"<html><body><h1>Guide</h1><h2>Kit</h2><p>Loans:</p><table>"
        b"<tr><th>Item</th><th>Days</th></tr><tr><td>Survey <b>boat</b></td><td>7</td></tr>"
        b"<tr><td>Drone</td><td>3</td></tr></table><p>Ask the technician.</p></body></html>"
    )
    path_sections = read_document(Path("kit.html"), page).sections
    assert [(s.heading, sentences(s.text)) for s in path_sections] == [
        ("Kit", ["Loans:", "Item: Survey boat; Days: 7.", "Item: Drone; Days: 3.",
                 "Ask the technician."]),
    ]  # fmt: skip
