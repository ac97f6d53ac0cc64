"""The files' wiring from settings (bot/app.py calls it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from botbuilder.core import Storage

from bot.channels.streaming import StreamOptions
from bot.files.collection import CollectionLimits
from bot.files.fetch import FetchLimits
from bot.files.service import MB, ChatFiles, FilesConfig
from bot.knowledge.retriever import RetrievalOptions
from bot.knowledge.setup import Knowledge
from bot.settings import Settings, SettingsError, env_name

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 3600.0  # files expire by the hour (bot/files/collection.py)

POSITIVE = (
    "max_upload_mb",
    "file_fetch_timeout_s",
    "files_ttl_hours",
    "files_per_conversation",
    "files_max_chunks",
)


def build_files(
    settings: Settings, storage: Storage, knowledge: Knowledge, stream: StreamOptions
) -> ChatFiles:
    """Files kept in the state's `storage`, embedded by the knowledge index's embedder and read
    within its bounds. SettingsError for a bound that is not above 0."""
    for name in POSITIVE:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{env_name(name)} must be more than 0")
    config = FilesConfig(
        fetch=FetchLimits(
            max_bytes=int(settings.max_upload_mb * MB),
            timeout_s=settings.file_fetch_timeout_s,
            allowed=settings.allowed_file_urls,
        ),
        collection=CollectionLimits(
            ttl_s=settings.files_ttl_hours * 3600.0,
            max_files=settings.files_per_conversation,
            max_chunks=settings.files_max_chunks,
        ),
        read=knowledge.limits,
        retrieval=RetrievalOptions(
            min_score=settings.knowledge_min_score,
            lexical_min_score=settings.knowledge_lexical_min_score,
        ),
        stream=stream,
    )
    return ChatFiles(storage, knowledge.embedder, config)


def sweeping(
    files: ChatFiles, every_s: float = SWEEP_EVERY_S
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that drops expired files of every conversation now and every `every_s`
    while the bot serves (each replica: a sweep of hours already swept finds nothing)."""

    async def sweep_forever() -> None:
        while True:
            try:
                changed = await files.sweep()
                if changed:
                    logger.info("dropped expired files from %d conversations", changed)
            except Exception:  # the store down a while: the next sweep catches up
                logger.warning("the sweep of expired files failed", exc_info=True)
            await asyncio.sleep(every_s)

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sweep_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
