"""From a stored activity to a finished turn, in order, on whichever replica holds the lock.

inbox → `runner` (`TurnRunner`: the conversation's lock, oldest entry first, dedupe by activity
id) → `inbox_entries` (an entry rebuilt as a turn on the adapter) → `middleware` (turn log, rate
limit) and `transcripts` → `activity_handler` (`AssistantBot`: welcome, typing, dialogs, state)
→ dialogs/. `typing_indicator` shows typing while a turn works; `error_handler` is the
adapter's `on_turn_error` (log, apologise, a trace for the local Emulator).
"""
