"""Where documents come from (master side only): files, etcd, HTTP, layers.

``base`` (the interfaces) and ``select`` (which source the settings name);
``locations`` (the grammar of source strings, pure), ``files`` (capped
reads, secret files, bytes to a document), ``checks`` (the user's checks);
the sources ``file``, ``layered``, ``http/`` and ``etcd/``, and what they
share: ``watch``, ``debounce``, ``follower``, ``forksafe``.

Never imports ``_master`` or ``_worker``; this package module imports
nothing, so ``_settings`` may use ``locations`` alone."""
