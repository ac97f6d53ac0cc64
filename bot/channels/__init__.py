"""Where replies go: the channels around the bot.

- `connector_client`: `RetryingCloudAdapter`, which posts replies to the channel's connector
  (`serviceUrl`) through one pooled aiohttp session, with retries.
- `directline`: a local Direct Line 3.0 service for Web Chat (the Web Chat API and the Bot
  Connector API the bot replies to), and `webchat`: the /chat page that uses it.
- `console`: `botloom chat`, the same bot in a terminal.
"""
