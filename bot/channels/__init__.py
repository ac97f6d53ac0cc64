"""Where replies go: the channels around the bot.

- `connector_client`: `RetryingCloudAdapter`, which posts replies to the channel's connector
  (`serviceUrl`) through one pooled aiohttp session, with retries.
- `directline`: a local Direct Line 3.0 service for Web Chat (the Web Chat API and the Bot
  Connector API the bot replies to), and `webchat`: the /chat page that uses it.
- `console`: `botloom chat`, the same bot in a terminal.
- `replies`: renders the dialogs' channel-neutral `Reply` for the turn's channel: `streaming`
  (which channels stream, the activities of a stream, send-error classes), `streaming_reply` (one
  streamed reply at the channel's pace, with Stop; `stream_pacing`), `ai_content` (the AI label,
  feedback buttons), `citations` (Teams entity, Web Chat references, a Sources line) and
  `message_parts` (splitting at the channel's message size).
"""
