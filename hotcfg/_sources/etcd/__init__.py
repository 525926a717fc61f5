"""One etcd v3 key, or a prefix, over etcd's JSON gateway."""
