"""``hotcfg wait`` after a save, under real Gunicorn (4 workers): it returns
only once the source's content as it is now is applied by every worker, or
exits 1 with the master's reason when that content is refused."""

import subprocess

import pytest

from .conftest import WORKERS

pytestmark = pytest.mark.e2e

ITERATIONS = 40


def hotcfg(svc, *args, timeout=60):
    return svc.hotcfg(*args, timeout=timeout)


def save_with_cp(svc, text, scratch):
    """``cp`` over the existing file: truncated and written in place."""
    scratch.write_text(text)
    subprocess.run(["cp", str(scratch), str(svc.config)], check=True)


def save_with_sed(svc, text, scratch):
    """``sed -i``: a temporary file renamed over the config."""
    value = text.split(":", 1)[1].strip()
    subprocess.run(
        ["sed", "-i", f"s/^value: .*/value: {value}/", str(svc.config)], check=True
    )


def save_with_rename(svc, text, scratch):
    svc.write_atomic(text)


def save_in_place(svc, text, scratch):
    svc.write_in_place(text)


SAVES = (save_with_cp, save_with_sed, save_with_rename, save_in_place)


def answers_of_every_worker(svc):
    """One answer from each worker at least (requests until every worker
    pid answered, at most 60)."""
    pids = svc.worker_pids()
    answers = []
    for _ in range(60):
        answers.append(svc.get())
        if pids <= {a["pid"] for a in answers}:
            break
    return answers


@pytest.mark.timeout(300)
def test_no_stale_answer_after_each_save_and_wait(start_service, tmp_path):
    """Save (``cp``, ``sed -i``, rename, in place), ``wait``, request every
    worker: never the value before the save. The library's default
    debounce (100 ms) is shorter than the command's start-up."""
    svc = start_service(tmp_path, env_extra={"HOTCFG_DEBOUNCE_MS": "500"})
    scratch = tmp_path / "new-config.yaml"
    stale = []
    for i in range(ITERATIONS):
        save = SAVES[i % len(SAVES)]
        value = f"v{i}"
        save(svc, f"value: {value}\n", scratch)
        done = hotcfg(svc, "wait", "--timeout", "10")
        assert done.returncode == 0, (save.__name__, done.stdout, done.stderr)
        answers = answers_of_every_worker(svc)
        old = [a for a in answers if a["value"] != value]
        if old:
            stale.append((i, save.__name__, done.stdout.strip(), old[0]))
    assert not stale, f"{len(stale)} of {ITERATIONS} saves answered stale: {stale}"


def assert_every_worker_answers(svc, value):
    answers = answers_of_every_worker(svc)
    assert {a["value"] for a in answers} == {value}, answers


def test_a_refused_save_makes_wait_exit_1_with_the_masters_reason(
    start_service, tmp_path
):
    """Refused by the parser, then by the validator: ``wait`` names the
    file, the place and the reason, and the workers keep the last good."""
    svc = start_service(
        tmp_path,
        env_extra={
            "HOTCFG_DEBOUNCE_MS": "500",
            "HOTCFG_VALIDATOR": "tests.apps.validators:no_forbidden",
        },
    )
    svc.write_atomic("value: [unclosed\n")
    unparsable = hotcfg(svc, "wait", "--timeout", "10")
    assert unparsable.returncode == 1, unparsable.stdout
    assert f"not published: {svc.config}:2:1: " in unparsable.stderr
    assert "(generation 1 stays live)" in unparsable.stderr

    svc.write_in_place("value: forbidden\n")
    refused = hotcfg(svc, "wait", "--timeout", "10")
    assert refused.returncode == 1, refused.stdout
    assert f"{svc.config}: " in refused.stderr
    assert "value may not be 'forbidden'" in refused.stderr
    assert_every_worker_answers(svc, "one")
    assert svc.status()[0]["last_error"]  # recorded as any rejection

    svc.write_in_place("value: two\n")
    done = hotcfg(svc, "wait", "--timeout", "10")
    assert done.returncode == 0, done.stderr
    assert f"converged: {WORKERS} workers on generation 2" in done.stdout
    assert_every_worker_answers(svc, "two")


def test_wait_for_a_busy_master_gives_up_at_its_timeout(start_service, tmp_path):
    """A validator that hangs holds the publish: ``wait`` says so and exits
    1 at its timeout; once it returns, ``wait`` sees that content live."""
    gate = tmp_path / "gate"
    svc = start_service(
        tmp_path,
        env_extra={
            "HOTCFG_VALIDATOR": "tests.apps.validators:misbehaving",
            "HANG_GATE": str(gate),
        },
    )
    try:
        svc.write_atomic("value: hang\n")
        svc.wait_until(lambda: svc.status()[0]["validating"], "the validator running")
        busy = hotcfg(svc, "wait", "--timeout", "1")
        assert busy.returncode == 1, busy.stdout
        assert "busy publishing (a validator may be running)" in busy.stderr
    finally:
        gate.touch()
    done = hotcfg(svc, "wait", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    assert_every_worker_answers(svc, "hang")


def test_wait_after_a_rollback_waits_for_it_and_says_the_source_differs(
    start_service, tmp_path
):
    svc = start_service(tmp_path)
    svc.write_atomic("value: two\n")
    assert hotcfg(svc, "wait", "--timeout", "10").returncode == 0
    assert hotcfg(svc, "rollback").returncode == 0
    done = hotcfg(svc, "wait", "--timeout", "10")
    assert done.returncode == 0, done.stderr
    assert f"converged: {WORKERS} workers on generation 3" in done.stdout
    assert (
        f"note: generation 3 (rollback:1 file:{svc.config}) is not what "
        f"{svc.config} holds" in done.stderr
    )
    assert_every_worker_answers(svc, "one")


def test_without_a_control_socket_wait_waits_for_the_live_generation(
    start_service, tmp_path
):
    """The old way, said on stderr: the master cannot be asked."""
    svc = start_service(tmp_path)
    (socket_file,) = svc.segments.glob("*.sock")
    socket_file.unlink()
    done = hotcfg(svc, "wait", "--timeout", "10")
    assert done.returncode == 0, done.stderr
    assert "note: cannot ask the master to read its source now" in done.stderr
    assert "waiting for the live generation 1" in done.stderr
    assert f"converged: {WORKERS} workers on generation 1" in done.stdout


def test_wait_fetches_the_url_now(http_server, start_service, tmp_path):
    """Polled every 10 minutes: ``wait`` does not wait for the next poll."""
    from tests.httpserver import good

    http_server.answer(good("value: one\n", etag='"1"'))
    svc = start_service(
        tmp_path,
        env_extra={
            "HOTCFG_SOURCE": http_server.url(),
            "HOTCFG_POLL_INTERVAL_MS": "600000",
        },
    )
    http_server.answer(good("value: two\n", etag='"2"'))
    done = hotcfg(svc, "wait", "--timeout", "10")
    assert done.returncode == 0, done.stderr
    assert f"converged: {WORKERS} workers on generation 2" in done.stdout
    assert_every_worker_answers(svc, "two")


@pytest.mark.timeout(120)
def test_wait_reads_etcd_now_while_the_watch_stream_is_silent(
    etcd, start_service, tmp_path
):
    """The master's watch stream goes silent (held open, no byte): a put
    reaches it only through ``wait``'s read of the key now."""
    from tests.stalling_proxy import StallingProxy

    key = "/app/config.yaml"
    etcd.put(key, "value: one\n")
    proxy = StallingProxy(etcd.client_port)
    try:
        svc = start_service(
            tmp_path,
            env_extra={
                "HOTCFG_SOURCE": f"etcd://127.0.0.1:{proxy.port}{key}",
                "HOTCFG_FLEET": "false",
            },
        )
        assert_every_worker_answers(svc, "one")
        proxy.stall()
        etcd.put(key, "value: two\n")
        done = hotcfg(svc, "wait", "--timeout", "20")
        assert done.returncode == 0, done.stderr
        assert f"converged: {WORKERS} workers on generation 2" in done.stdout
        assert_every_worker_answers(svc, "two")
    finally:
        proxy.stop()
