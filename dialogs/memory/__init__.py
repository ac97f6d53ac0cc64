"""What the bot remembers: the conversation's history and rolling summary (`history`,
`summary`), facts users state about themselves, found by rules (`user_facts`) or the model
(`model_facts`), kept per user (`user_store`), answers from them (`fact_answers`), and the
/memory, /forget and /remember commands (`commands`)."""
