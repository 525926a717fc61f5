"""The Celery receivers called as Celery calls them, in the test's process
with the real publisher (a worker's processes: tests/e2e/test_celery.py)."""

import pytest

import hotcfg
from hotcfg import _api
from hotcfg.integrations import celery as hc

celery = pytest.importorskip("celery")


def test_install_connects_each_receiver_once():
    app = celery.Celery("install-twice")
    hc.install(app)
    hc.install(app)
    assert hc._apps.count(app) == 1
    for sig, receiver in (
        (celery.signals.worker_init, hc.on_worker_init),
        (celery.signals.task_prerun, hc.on_task_prerun),
        (celery.signals.task_postrun, hc.on_task_postrun),
    ):
        ours = [r for r in sig._live_receivers(None) if r is receiver]
        assert len(ours) == 1, sig


def test_a_task_run_inside_another_gives_the_outer_pin_back(
    tmp_path, monkeypatch, fresh_hotcfg
):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    monkeypatch.setenv("HOTCFG_SOURCE", str(config))
    monkeypatch.setenv("HOTCFG_DEBOUNCE_MS", "10")

    hc.on_task_prerun(task_id="outer")
    outer = _api.pinned()
    assert outer is not None
    assert hotcfg.get("value") == "one"
    fresh_hotcfg.save(config, "value: two\n")
    fresh_hotcfg.wait_for("value", "two")  # latest, not the pin
    assert hotcfg.get("value") == "one"  # the outer task's snapshot

    hc.on_task_prerun(task_id="inner")  # run eagerly: a pin of its own
    assert hotcfg.get("value") == "two"
    hc.on_task_postrun(task_id="inner")
    assert _api.pinned() is outer
    assert hotcfg.get("value") == "one"

    hc.on_task_postrun(task_id="outer")
    assert _api.pinned() is None
    assert hotcfg.get("value") == "two"
    hc.on_task_postrun(task_id="never-started")  # nothing to end
    assert hc._pins == {}


def test_a_worker_of_another_app_is_left_alone(fresh_hotcfg):
    class Worker:
        app = object()
        hostname = "other@localhost"

    hc.on_worker_init(sender=Worker())  # would raise: no source here
    assert hc._parent_pid is None
