"""One turn's answer: stages that may answer, add to the prompt or pass (`stages`: memory, then
knowledge), then the model (`model_reply`), with the prompt (`prompt`), sentence endings
(`reply_ending`), apologies for model failures (`apologies`) and the channel-neutral reply the
channel layer renders (`reply`)."""
