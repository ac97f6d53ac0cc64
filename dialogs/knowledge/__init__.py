"""Answers grounded in the knowledge index: passages and the retriever interface bot/ implements
(`passages`), what the prompt shows of them (`grounding`), the guard against numbers and names
they do not contain (`guard`), and which passages a reply cites (`citations`)."""
