"""The composition root and everything Bot Framework: settings, the aiohttp app, the CLI.

`app.py` wires a turn's path: `http/` (the endpoint) → `storage/` (the inbox, state, locks) →
`turns/` (in order, under the conversation's lock, into the activity handler) → dialogs/ →
`channels/` (replies out). `scripted/` replays `.chat` and `.transcript` conversations.
"""
