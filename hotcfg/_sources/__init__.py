"""Where documents come from (master side only): files, etcd, HTTP, layers.

Never imports ``_master`` or ``_worker``."""
