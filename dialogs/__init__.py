"""Conversation logic on botbuilder-dialogs; imports the model interface (models/), never bot/.

- `main_dialog`: the root router (commands, flows, `help` and `cancel` anywhere).
- `chat_dialog`: the default dialog; it only orchestrates one turn's answer.
- `answer/`: that answer as stages (memory, knowledge, the model), the prompt, reply endings,
  apologies, and the channel-neutral `Reply` handed to bot/channels.
- `memory/`: conversation history, the rolling summary, user facts and answers from them.
- `knowledge/`: passages, grounding, the guard against invented facts, which passages a reply cites.
- `text`: words, stopwords, stems and sentences, once.
- `feedback_dialog`: the /feedback flow.
"""
