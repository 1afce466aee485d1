"""The one exception type for user errors (bad files, bad arguments).

Anything else that escapes is a bug; an ``ImfitError`` is shown to the user as is, so its
message must say which file, what is wrong and what to do.
"""


class ImfitError(Exception):
    """A user error: the message says which file, what is wrong and what to do."""
