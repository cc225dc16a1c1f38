"""gdbext: a paused process's memory as the people who debug it think about it."""

__version__ = "0.1.0"
