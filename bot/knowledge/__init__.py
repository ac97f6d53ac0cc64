"""Knowledge: the user's own documents, read, chunked, embedded and indexed for retrieval."""
