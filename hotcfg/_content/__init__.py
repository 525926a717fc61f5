"""Content: bytes of a document -> a checked mapping. Pure: no I/O.

Imports nothing of hotcfg's but ``_errors`` and ``_segment``'s frozen values."""
