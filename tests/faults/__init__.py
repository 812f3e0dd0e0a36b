"""Fault-injection suite (issue 8, item 7): real beats, real Redis and PostgreSQL, every message checked.

Placeholder docstring; the full one is written once the figures are settled.
"""
