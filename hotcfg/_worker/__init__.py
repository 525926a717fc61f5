"""The reader's side: runs in every worker. Never imports ``_master``
or ``_sources``."""
