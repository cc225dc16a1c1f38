"""The edge: the only package that imports gdb. Memory, mappings, symbols, threads."""
