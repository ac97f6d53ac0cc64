"""Conversation logic on botbuilder-dialogs; imports the model interface (models/), never bot/.

- `main_dialog`: the root router (commands, flows, `help` and `cancel` anywhere).
- `chat_dialog`: the default: the model answers, with `prompt` (what fits the token budget) and
  `memory` (the conversation's history in conversation state).
- `feedback_dialog`: the /feedback flow.
- `streaming` (which channels stream, the activities of a stream) and `streaming_reply` (one
  streamed reply, at the channel's pace, with Stop).
"""
