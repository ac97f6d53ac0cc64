"""Several retrievers searched as one: the conversation's own files first, then the index."""

from __future__ import annotations

from collections.abc import Sequence

from dialogs.knowledge.passages import Passage, Retriever


class PreferredRetriever:
    """A `Retriever` over `first` (the conversation's files: what the user put in front of the
    bot is what they most likely ask about) and then `then` (the organisation's index): the
    passages of `first`, best first, then those of `then` (always searched too), `limit` in all."""

    def __init__(self, first: Sequence[Retriever], then: Retriever | None) -> None:
        self._first = list(first)
        self._then = then

    async def search(self, query: str, limit: int) -> list[Passage]:
        found: list[Passage] = []
        for retriever in self._first:
            found += await retriever.search(query, limit)
        found.sort(key=lambda passage: -passage.score)
        if self._then is not None:
            found += await self._then.search(query, limit)
        return found[:limit]
