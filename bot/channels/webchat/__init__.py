"""The local chat page (/chat): the official Web Chat UI, installed from npm into this folder."""
