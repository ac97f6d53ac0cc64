"""LoopHandoff: pieces from the batcher's thread reach the event loop complete and in order."""

from __future__ import annotations

import asyncio
import threading

from models.engine.chat_model import LoopHandoff


async def test_pieces_from_a_thread_arrive_in_order_per_queue() -> None:
    handoff = LoopHandoff(asyncio.get_running_loop())
    queues: list[asyncio.Queue[str | None]] = [asyncio.Queue(), asyncio.Queue()]

    def steps() -> None:  # like decode steps: one piece per row, then the end
        for step in range(200):
            for row, queue in enumerate(queues):
                handoff.put(queue, f"{row}:{step}")
        for queue in queues:
            handoff.put(queue, None)

    thread = threading.Thread(target=steps)
    thread.start()
    received: list[list[str]] = [[], []]
    for row, queue in enumerate(queues):
        while (piece := await queue.get()) is not None:
            received[row].append(piece)
    thread.join()
    assert received == [[f"{row}:{step}" for step in range(200)] for row in range(2)]


async def test_a_burst_while_the_loop_is_busy_arrives_in_one_turn() -> None:
    handoff = LoopHandoff(asyncio.get_running_loop())
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    thread = threading.Thread(target=lambda: [handoff.put(queue, str(i)) for i in range(16)])
    thread.start()
    thread.join()  # the loop is blocked meanwhile: the 16 pieces wait in the handoff
    assert queue.empty()
    await asyncio.sleep(0)  # one turn of the loop delivers them all
    assert [queue.get_nowait() for _ in range(16)] == [str(i) for i in range(16)]
