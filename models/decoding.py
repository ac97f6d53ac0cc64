"""Token ids to reply text, as they are generated: incremental detokenisation and stop strings.

`ReplyText` is what the serial model (models/hf.py) and the batching engine (models/engine/) share:
it turns each generated token into the text pieces a caller may see, and says when a stop string
ended the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from transformers import PreTrainedTokenizerBase

REPLACEMENT = "\ufffd"  # what a decoder shows for an incomplete UTF-8 sequence


class IncrementalDecoder:
    """Turns token ids into text as they arrive, one piece per call, special tokens skipped.

    Decoding token by token breaks characters split over byte-fallback tokens and loses the
    spaces that sentencepiece decoders strip at the start of a text, so each step decodes a short
    window of recent tokens twice (up to the last emitted token, and up to the newest) and emits
    the difference, holding it back while it ends in an incomplete character (the approach of
    vLLM and text-generation-inference). The pieces join to the text of all ids decoded at once,
    except after byte tokens that never form valid UTF-8 (U+FFFD marks those either way).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_offset = 0  # window start: tokens before it are emitted and never re-read
        self._read_offset = 0  # tokens before it are emitted

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (often "", sometimes several characters)."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text still held back (an incomplete character shows as U+FFFD)."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        emitted = self._decode(self._ids[self._prefix_offset : self._read_offset])
        current = self._decode(self._ids[self._prefix_offset :])
        if len(current) <= len(emitted) or (current.endswith(REPLACEMENT) and not final):
            return ""
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return current[len(emitted) :]

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True)) if ids else ""


class StopStringFilter:
    """Cuts a stream of text at the first stop string; the stop string itself never passes.

    Text that could be the start of a stop string is held back until the next piece shows
    whether it is one; `stopped` turns true once a stop string has been seen.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Add a piece; return the text that is now certainly part of the reply."""
        if self.stopped:
            return ""
        text = self._held + text
        ends = [index for stop in self._stops if (index := text.find(stop)) >= 0]
        if ends:
            self.stopped, self._held = True, ""
            return text[: min(ends)]
        keep = self._longest_stop_prefix_at_end(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of the reply: the held-back text (it turned out not to be a stop string)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_stop_prefix_at_end(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:length]):
                    longest = length
                    break
        return longest


class ReplyText:
    """Turns generated token ids into reply text, piece by piece, handed to `emit`.

    Stop tokens (EOS) are never shown, text is detokenised incrementally (IncrementalDecoder) and
    cut at the first stop string (StopStringFilter); `stopped` turns true once a stop string has
    been seen, after which generation should end. Call `end()` once, after the last token.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stops: Sequence[str],
        stop_token_ids: Sequence[int],
        emit: Callable[[str], None],
    ) -> None:
        self._decoder = IncrementalDecoder(tokenizer)
        self._filter = StopStringFilter(stops)
        self._stop_token_ids = set(stop_token_ids)
        self._emit = emit

    @property
    def stopped(self) -> bool:
        return self._filter.stopped

    def push(self, token_id: int) -> None:
        if token_id not in self._stop_token_ids:
            self._send(self._filter.push(self._decoder.push(token_id)))

    def end(self) -> None:
        self._send(self._filter.push(self._decoder.flush()) + self._filter.flush())

    def _send(self, text: str) -> None:
        if text:
            self._emit(text)
