"""Parsing off the event loop: a document's bytes in, its title and chunks out, within a deadline.

A reader runs in a worker process, not a thread: a thread inside a regular expression or a C
parser holds the GIL, and the event loop (replies, /healthz) would stop with it. The worker is
started with the "spawn" method (a fresh interpreter: none of the bot's threads, sockets or
state are copied into it), parses one document at a time, and is killed when a document takes
longer than the deadline; the next document starts a fresh one. Where the platform allows
(`resource.RLIMIT_AS`: Linux), the worker's address space is capped too, so a document that
would take more memory fails alone ("out of memory") instead of the bot being killed for it;
and on Linux the worker asks to be the first process the kernel's OOM killer picks (a container
memory limit below the cap then kills the worker, not the bot). A worker that dies costs only
the document it was reading.

This module imports only the readers and the chunker, so a worker starts in a fraction of a
second. As with any "spawn" process, a script of its own that runs ingestion needs the usual
`if __name__ == "__main__":` guard (the botloom command and bench/ scripts have it).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection

from bot.knowledge.chunking import Chunk, chunk_sections
from bot.knowledge.readers import Reader, ReadLimits, UnreadableDocument, read_with


@dataclass(frozen=True)
class ParseJob:
    """One document: `reader` (a module-level function, sent by reference) on `data`."""

    reader: Reader
    data: bytes
    fallback_title: str
    read_limits: ReadLimits
    max_tokens: int
    overlap_tokens: int


@dataclass(frozen=True)
class ParsedChunks:
    title: str
    chunks: list[Chunk]


def parse(job: ParseJob) -> ParsedChunks:
    """Read and chunk one document (what the worker runs; callable in-process too)."""
    document = read_with(job.reader, job.data, job.fallback_title, job.read_limits)
    chunks = chunk_sections(
        document.sections, max_tokens=job.max_tokens, overlap_tokens=job.overlap_tokens
    )
    return ParsedChunks(document.title, chunks)


STARTUP_S = 60.0  # how long a new worker may take to start (an interpreter and its imports)
OUT_OF_MEMORY = "out of memory while parsing (BOTLOOM_KNOWLEDGE_PARSE_MEMORY_MB)"


def _cap_memory(memory_bytes: int) -> None:
    """Cap this process's address space at `memory_bytes` (where `resource` has RLIMIT_AS)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ImportError, AttributeError, ValueError, OSError):
        pass  # no cap on this platform (or not lower than the hard limit): the deadline holds


def _serve(connection: Connection, memory_bytes: int) -> None:
    """The worker's loop: a job in, ("ok", ParsedChunks) or ("unreadable", why) out, until the
    parent closes its end. `memory_bytes` (0: none) caps the process's address space."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if memory_bytes > 0:
        _cap_memory(memory_bytes)
    with contextlib.suppress(OSError):  # Linux: the OOM killer's first pick, not the bot
        with open("/proc/self/oom_score_adj", "w") as adjust:
            adjust.write("1000")
    connection.send(("ready", None))  # imports done: the deadline starts with each job
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, object] = ("ok", parse(job))
        except UnreadableDocument as error:
            reply = ("unreadable", str(error))
        except MemoryError:
            reply = ("unreadable", OUT_OF_MEMORY)
        except Exception as error:  # a reader's bug costs this document only
            reply = ("unreadable", f"the reader failed ({type(error).__name__})")
        connection.send(reply)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, memory_bytes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(theirs, memory_bytes), name="botloom-parser", daemon=True
        )
        self.process.start()
        theirs.close()  # so the parent sees end of file when the worker dies

    def wait_ready(self) -> None:
        """Until the worker has imported what it needs; UnreadableDocument (and the worker
        closed) when it dies or takes longer than STARTUP_S."""
        try:
            if not self.connection.poll(STARTUP_S):
                raise EOFError
            self.connection.recv()
        except (EOFError, OSError):
            code = self.close()
            raise UnreadableDocument(
                f"the parser process did not start (exit code {code})"
            ) from None

    def close(self) -> int | None:
        """Kill the process (if it still runs), reap it and close the pipe; its exit code.
        Safe to call more than once."""
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join(timeout=10)
        self.connection.close()
        return self.process.exitcode


class DocumentParser:
    """Parses documents in a worker process, each within `timeout_s` seconds of wall time and,
    where the platform allows, `memory_bytes` of address space (0: no cap).

    Every outcome but success raises UnreadableDocument with a reason for the skip line: the
    reader's own reason, the deadline (the worker is killed), or the worker's death. One
    document at a time; `close()` stops the worker (idle or not)."""

    def __init__(self, timeout_s: float, memory_bytes: int = 0) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._worker: _Worker | None = None
        self._closed = False
        self._lock = asyncio.Lock()

    async def parse(self, job: ParseJob) -> ParsedChunks:
        async with self._lock:
            loop = asyncio.get_running_loop()
            exchange = loop.run_in_executor(None, self._exchange, job)
            try:
                status, value = await asyncio.shield(exchange)
            except asyncio.CancelledError:
                self._closed = True  # a worker the exchange is still starting is closed there
                worker, self._worker = self._worker, None
                if worker is not None:  # end the parse; the exchange then sees end of file
                    worker.process.kill()
                    exchange.add_done_callback(lambda _: worker.close())
                raise
        if status == "ok":
            assert isinstance(value, ParsedChunks)
            return value
        raise UnreadableDocument(str(value))

    def _exchange(self, job: ParseJob) -> tuple[str, object]:
        """On an executor thread: send `job`, wait for the reply until the deadline."""
        worker = self._worker
        if worker is None:
            self._worker = worker = _Worker(self.memory_bytes)
            if self._closed:  # cancelled while the process started
                worker.close()
                return "unreadable", "parsing cancelled"
            try:
                worker.wait_ready()
            except UnreadableDocument as error:
                self._worker = None
                return "unreadable", str(error)
        try:
            worker.connection.send(job)
            if worker.connection.poll(self.timeout_s):
                return worker.connection.recv()
        except (EOFError, OSError):
            self._worker = None
            code = worker.close()
            return "unreadable", f"the parser process died (exit code {code})"
        self._worker = None
        worker.close()
        return "unreadable", (
            f"parsing took longer than {self.timeout_s:g} s (BOTLOOM_KNOWLEDGE_PARSE_TIMEOUT_S); "
            "stopped"
        )

    def close(self) -> None:
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            with contextlib.suppress(OSError):
                worker.close()
