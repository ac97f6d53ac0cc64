"""Reading a document is bounded whatever its content: the patterns run in linear time and a
.docx is refused when its parts unpack past the limit, before they are read whole."""

from __future__ import annotations

import io
import random
import re
import time
import zipfile
from pathlib import Path

import pytest

from bot.knowledge.readers import (
    ReadLimits,
    UnreadableDocument,
    markdown_heading,
    read_document,
)

# The heading pattern the Markdown reader used to have (cubic on "# a" + spaces + "b"); its
# matches on short lines are the behaviour the linear parser keeps.
_OLD_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def old_heading(line: str) -> tuple[int, str] | None:
    match = _OLD_ATX.match(line)
    return None if match is None else (len(match.group(1)), match.group(2).strip())


def test_a_crafted_heading_line_of_10000_spaces_parses_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "crafted.md"
    data = ("# a" + " " * 10_000 + "b\n\nBody text.\n").encode()
    started = time.monotonic()
    document = read_document(path, data)
    assert time.monotonic() - started < 1.0
    assert document.title == "a" + " " * 10_000 + "b"
    many = ("## x" + " " * 2_000 + "#" * 3 + " " * 2_000 + "y\n\nBody.\n") * 50
    started = time.monotonic()
    read_document(path, many.encode())
    assert time.monotonic() - started < 1.0


def test_markdown_headings_are_read_as_before_on_ordinary_and_odd_lines() -> None:
    lines = ["# Title", "## Setup ##", "### C#", "#no", "####### seven", "#   ", "# ", "#",
             "#\tTabbed\t#\t", "# ###", "  # indented", "# a # b #", "###### six ######",
             "# \u00a0nbsp\u00a0"]  # fmt: skip
    rng = random.Random(7)
    lines += [
        "".join(rng.choice("# \ta\u00a0") for _ in range(rng.randrange(12))) for _ in range(5000)
    ]
    for line in lines:
        assert markdown_heading(line) == old_heading(line), repr(line)


def zip_bomb_docx(unpacked_bytes: int) -> bytes:
    """A real .docx (python-docx) whose document part is padded, after its root element, with
    `unpacked_bytes` of spaces that deflate to a few KB."""
    import docx

    source = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("The Aurora-3 warranty lasts seven years.")
    document.save(source)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
    ):
        for info in original.infolist():
            if info.filename != "word/document.xml":
                archive.writestr(info.filename, original.read(info))
                continue
            with archive.open(info.filename, "w", force_zip64=True) as part:
                part.write(original.read(info))
                block = b" " * (1024 * 1024)
                for _ in range(unpacked_bytes // len(block)):
                    part.write(block)
    return out.getvalue()


def test_a_zip_bomb_docx_is_refused_without_being_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = zip_bomb_docx(64 * 1024 * 1024)
    assert len(data) < 200 * 1024
    limits = ReadLimits(max_unpacked_bytes=16 * 1024 * 1024)
    read = 0
    original = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):  # type: ignore[no-untyped-def]
        nonlocal read
        chunk = original(self, n)
        read += len(chunk)
        return chunk

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    with pytest.raises(UnreadableDocument, match="unpacks to more than 16 MB"):
        read_document(Path("bomb.docx"), data, limits)
    assert read <= 17 * 1024 * 1024, "stopped at the limit, not read whole"


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """`data` with the uncompressed size of member `name` set to `size` in its local header and
    its central directory entry (a member under 4 GB, without zip64 fields)."""
    patched = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        local = archive.getinfo(name).header_offset
    patched[local + 22 : local + 26] = size.to_bytes(4, "little")
    central = patched.find(b"PK\x01\x02")
    while patched[central + 46 : central + 46 + len(name)] != name.encode():
        central = patched.find(b"PK\x01\x02", central + 4)
    patched[central + 24 : central + 28] = size.to_bytes(4, "little")
    return bytes(patched)


def test_a_docx_whose_declared_sizes_lie_is_refused_without_being_read_whole() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", b"<a/>" + b" " * (8 * 1024 * 1024))
    liar = _declare_size(out.getvalue(), "word/document.xml", 1024)
    with zipfile.ZipFile(io.BytesIO(liar)) as archive:
        assert archive.getinfo("word/document.xml").file_size == 1024
    with pytest.raises(UnreadableDocument, match=r"not a readable \.docx|unpacks to more than"):
        read_document(Path("liar.docx"), liar, ReadLimits(max_unpacked_bytes=4 * 1024 * 1024))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("spaces.txt", "\n" + " " * 200_000 + "x.\n"),
        ("runs.txt", ("\n" + "\r" * 2_000 + "x") * 100),
        ("dots.md", "# T\n\n" + "." + " " * 200_000 + "a."),
        ("spaced.md", "# T\n\n" + ("a." + " " * 2_000) * 100 + "end."),
        ("tags.html", "<p>" + "\n \n" * 50_000 + "text</p>"),
    ],
)
def test_the_other_patterns_stay_linear_on_long_whitespace_runs(
    tmp_path: Path, name: str, text: str
) -> None:
    from bot.knowledge.chunking import chunk_sections

    started = time.monotonic()
    document = read_document(tmp_path / name, text.encode())
    chunk_sections(document.sections, max_tokens=180, overlap_tokens=30)
    assert time.monotonic() - started < 1.0
