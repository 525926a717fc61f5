"""The shared-memory segment: shared by the master and the workers.

Pure (bytes in, values out) except ``shm``, which maps and writes the file,
and ``where``, which lists the segment directory.
Imports nothing of hotcfg's but ``_errors`` and ``_content``."""
