"""The error type every user-facing failure derives from: the CLI prints its message as one line."""


class VidmojiError(Exception):
    """A failure caused by the user's input or environment, reported without a traceback."""


class VidmojiWarning(UserWarning):
    """Something in the input was damaged and left out (frames, audio); the CLI prints it as one line."""
