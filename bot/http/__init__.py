"""The HTTP edge of a turn: `POST /api/messages` in, a 202 (or a short 4xx/5xx reason) out.

- `messages`: the endpoint (`MessagesEndpoint`): parse, authenticate, check the service URL,
  store the activity in the inbox, answer; invokes and expectReplies run synchronously.
- `request_parsing`: the request body → an activity, or a 4xx with the reason.
- `auth`: Bot Framework JWT checks that answer 401 (never 500); Emulator tokens must name this
  bot as their audience.
- `signing_keys`: the token signing keys, fetched off the event loop, refreshed in the
  background with back-off, served from the cache until they expire.
- `service_urls`: which `serviceUrl`s the bot may reply to.
- `health`: `/healthz`, `/readyz` and the plain 500 for bugs.
"""
