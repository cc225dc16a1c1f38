"""Plain Python over bytes and plain data; nothing below here imports gdb."""
