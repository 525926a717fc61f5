"""A WSGI app whose SQLAlchemy pool size follows the config, without a restart.

    HOTCFG_SOURCE=examples/resource.yaml gunicorn -c gunicorn_conf.py \\
        --worker-class gthread --threads 8 --pythonpath examples resource_app:app

with ``examples/resource.yaml`` holding::

    db:
      url: sqlite:////tmp/resource-demo.db
      pool_size: 4

Edit ``pool_size``: the next request in each worker builds an engine with
the new pool; requests already running finish on the old one, which is then
disposed. Each answer shows the pool serving it and the counts.
"""

import json
import os
import time
import weakref
from urllib.parse import parse_qs

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import QueuePool

import hotcfg


def make_engine(db):
    """The factory: called with the value at ``db`` whenever it changes."""
    return create_engine(
        db["url"],
        poolclass=QueuePool,
        pool_size=db["pool_size"],
        max_overflow=0,  # the size is the limit, so a resize is visible
        pool_timeout=30,
    )


# Disposed engines, to prove none is used after; weakly held, since an id
# (an address) is reused once a disposed engine is gone.
disposed: weakref.WeakSet[Engine] = weakref.WeakSet()
disposed_count = 0


def dispose(db: Engine) -> None:
    """The close: runs once no request holds the replaced engine."""
    global disposed_count
    db.dispose()
    disposed.add(db)
    disposed_count += 1


engine = hotcfg.resource("db", make_engine, dispose)


def app(environ, start_response):
    with engine.use() as db, db.connect() as conn:
        answer = conn.execute(text("select 1")).scalar_one()
        pool_size = db.pool.size()
        # ?hold_ms=N stands for a slow query: the engine stays in use meanwhile.
        hold_ms = parse_qs(environ.get("QUERY_STRING", "")).get("hold_ms", ["0"])[0]
        time.sleep(min(int(hold_ms), 1000) / 1000)
        if db in disposed:
            raise RuntimeError("served by a disposed engine")
    stats = engine.stats()
    body = {
        "pid": os.getpid(),
        "generation": hotcfg.generation(),
        "answer": answer,
        "pool_size": pool_size,
        "built": stats.built,
        "closed": stats.closed,
        "disposed": disposed_count,
        "in_use": stats.in_use,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
