"""One etcd v3 key, or a prefix, over etcd's JSON gateway (master only).

``connection`` (a socket to one member: TLS, keepalive, deadlines, fork
safety) is used by ``client`` (one request, auth, errors, trying each
endpoint), which ``kv`` (reads, compare-and-swap), ``source`` (the key's
state and document), ``watch`` (the stream, reconnections) and ``probe``
(a silent member) build on; ``access`` holds TLS, the user and the token;
``answer`` and ``keytree`` are pure.
"""
