"""The edge: the only package that imports gdb. Memory, mappings, symbols, threads."""

from . import mappings  # noqa: F401  (it gives process.Target the stack-gap finder)
