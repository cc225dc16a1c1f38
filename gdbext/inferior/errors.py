"""One exception a command turns into one clear sentence for the user."""


class UserError(Exception):
    """A problem the user can act on; the message is one sentence without the command name."""
