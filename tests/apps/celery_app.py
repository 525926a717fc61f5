"""A Celery app for the end-to-end tests, with hotcfg installed.

The broker and result backend are the redis server a test started
(``CELERY_TEST_REDIS``). Each child records, in the file
``CELERY_TEST_RECORD``, a line ``<pid> <generation>`` for every change it
applies (its ``on_change`` callback, run by its applier thread, also while
it is idle). ``CELERY_TEST_START_METHOD`` sets ``worker_pool_start_method``.

Tasks (all answer ``{"pid", "generation", "value"}`` for the key ``value``):

* ``read``: what the task's snapshot holds.
* ``read_twice(marker)``: reads, creates ``marker``, waits until a newer
  generation is published (``hotcfg.latest()``), reads again; answers both
  reads and the newer generation.
"""

import os
import time

from celery import Celery

import hotcfg
from hotcfg.integrations.celery import install

_redis = os.environ.get("CELERY_TEST_REDIS", "redis://127.0.0.1:6379/0")

app = Celery("tests.apps.celery_app", broker=_redis, backend=_redis)
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
)
if os.environ.get("CELERY_TEST_START_METHOD"):
    app.conf.worker_pool_start_method = os.environ["CELERY_TEST_START_METHOD"]
install(app)


@hotcfg.on_change()
def _record(old, new):
    path = os.environ.get("CELERY_TEST_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {new.generation}\n")


def _answer():
    return {
        "pid": os.getpid(),
        "generation": hotcfg.generation(),
        "value": hotcfg.get("value"),
    }


@app.task(name="read")
def read():
    return _answer()


@app.task(name="read_twice")
def read_twice(marker, timeout_s=30):
    first = _answer()
    with open(marker, "w"):
        pass
    deadline = time.monotonic() + timeout_s
    while hotcfg.latest().generation == first["generation"]:
        if time.monotonic() > deadline:
            raise TimeoutError("no newer generation was published")
        time.sleep(0.02)
    return {"first": first, "second": _answer(), "latest": hotcfg.latest().generation}
