"""Turning model data into one table or one JSON document."""
