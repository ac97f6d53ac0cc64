"""Files users attach in chat: the channels' attachment shapes (attachments.py), a fetcher that
only downloads from allowed origins and within the size limit (fetch.py), the conversation's
collection in the bot's storage and its search (collection.py, search.py), and the
`dialogs.files.ConversationFiles` the chat dialog uses (service.py)."""
