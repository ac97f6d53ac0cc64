"""The local Direct Line's file store: bounded per conversation and in all, never making room by
dropping a live conversation's files."""

from __future__ import annotations

import pytest

from bot.channels.directline.file_store import FilesFull, FileStore, UploadedFile


def files(conversation: str, *sizes: int) -> list[tuple[str, UploadedFile]]:
    return [
        (f"{conversation}-{i}", UploadedFile(conversation, f"f{i}", "text/plain", b"x" * size))
        for i, size in enumerate(sizes)
    ]


def test_a_conversation_drops_its_own_oldest_files() -> None:
    store = FileStore(lambda _: False, per_conversation=2, conversation_bytes=100, total_bytes=1000)
    store.keep("a", files("a", 10, 10))
    store.keep("a", [("a-new", UploadedFile("a", "n", "text/plain", b"y" * 95))])
    assert store.get("a-0") is None and store.get("a-1") is None, "over its 100 bytes"
    assert store.get("a-new") is not None


def test_a_full_store_refuses_rather_than_evicting_a_live_conversation() -> None:
    ended: set[str] = set()
    store = FileStore(
        ended.__contains__, per_conversation=4, conversation_bytes=60, total_bytes=100
    )
    store.keep("a", files("a", 30, 30))
    with pytest.raises(FilesFull):
        store.keep("b", files("b", 30, 30))
    assert store.get("a-0") is not None and store.get("b-0") is None, "all or nothing"
    ended.add("a")  # its tokens expired: its files may go now
    store.keep("b", files("b", 30, 30))
    assert store.get("a-0") is None and store.get("b-1") is not None


def test_an_ended_conversations_files_go_at_the_next_upload() -> None:
    ended: set[str] = set()
    store = FileStore(
        ended.__contains__, per_conversation=4, conversation_bytes=60, total_bytes=1000
    )
    store.keep("a", files("a", 10))
    ended.add("a")
    store.keep("b", files("b", 10))  # room enough: a's files go all the same
    assert store.get("a-0") is None and store.get("b-0") is not None
