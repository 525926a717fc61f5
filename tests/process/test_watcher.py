"""The master's file watcher against real tools and real saves, no Gunicorn.

Each test runs the real publisher, the real watchdog observer, a real segment
and a Reader on it, in this process; the saves are made by the real programs
where the machine has them (sed, cp, mv, install, git, vim) and otherwise by
the exact system-call sequence the tool is known to make.
"""

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time

import pytest

from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from hotcfg._sources.watch import Watcher, fingerprint
from hotcfg._worker.reader import Reader
from tests.waiting import rejected_count, wait_for

OLD = "name: before\nvalue: 1\n"
DEBOUNCE_MS = 50.0
POLL_MS = 200.0
# The storms' quiet time: a stall of this box longer than it looks like the
# end of a burst, so it is well above the usual scheduling noise.
STORM_DEBOUNCE_MS = 300.0
MAX_WAIT_MS = max(1000.0, 10 * STORM_DEBOUNCE_MS)  # the watcher's Debouncer.max_ms


def new_text(case):
    return f"name: {case}\nvalue: 2\n"


class UnchangedReads(logging.Handler):
    """Counts the publisher's reads that found nothing new to publish."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        self.count += "unchanged" in record.getMessage()


class Watched:
    """A real publisher watching ``path`` and a reader on its segment."""

    def __init__(self, path, *, mode="auto", debounce_ms=DEBOUNCE_MS, poll_ms=POLL_MS):
        source = FileSource(str(path), "yaml", 1 << 20)
        self.segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="w")
        settings = Settings(
            debounce_ms=debounce_ms, watch=mode, poll_interval_ms=poll_ms
        )
        self.publisher = Publisher(source, self.segment, settings)
        self._logger = logging.getLogger("hotcfg._master.publisher")
        self._level = self._logger.level
        self.unchanged = UnchangedReads()
        self._logger.addHandler(self.unchanged)
        self._logger.setLevel(logging.DEBUG)
        self.publisher.publish_from_source(raise_errors=True)
        self.publisher.start_watching()
        self.reader = Reader(self.segment.view())

    def snapshot(self):
        return self.reader.refresh()

    def wait_name(self, name):
        wait_for(lambda: self.snapshot().get("name") == name, f"name={name}")

    def reads(self):
        """Reads of the file the publisher finished: published, unchanged or
        refused. A read after the last change is the watcher's last word."""
        return (
            self.publisher.generation
            + self.unchanged.count
            + rejected_count(self.segment.buffer)
        )

    def wait_read_after(self, mark):
        """Wait for a read finished after ``reads()`` was ``mark``."""
        wait_for(lambda: self.reads() > mark, "the watcher's next read")

    def resave_and_wait(self, path, text):
        """Save ``text`` (the content already there) once more and wait for
        its read: what the watcher still had to publish is published by then."""
        mark = self.reads()
        atomic_write(path, text, ".resave.tmp")
        self.wait_read_after(mark)

    def close(self):
        self._logger.removeHandler(self.unchanged)
        self._logger.setLevel(self._level)
        self.reader.close()
        self.publisher.close()


@pytest.fixture
def watch():
    started = []

    def start(path, **kwargs):
        started.append(Watched(path, **kwargs))
        return started[-1]

    yield start
    for watched in started:
        watched.close()


def watchdog_observers():
    return [t for t in threading.enumerate() if t.name == "hotcfg-watchdog"]


def observer_watching(directory):
    """Whether a live observer with live emitters watches ``directory``."""
    return any(
        observer.is_alive()
        and any(
            e.is_alive() and e.watch.path == str(directory) for e in observer.emitters
        )
        for observer in watchdog_observers()
    )


def atomic_write(path, text, tmp_name):
    tmp = path.parent / tmp_name
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def write_in_place(path, text):
    with open(path, "r+") as f:  # open, then truncate and write: one inode
        f.truncate(0)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def run(*argv, cwd=None):
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, timeout=30)


# --- how each tool saves -------------------------------------------------------


def vim_backupcopy_yes(path, text):
    # vim copies the original to a backup, truncates and rewrites the
    # original, then drops the backup (as strace shows for vim 9).
    backup = path.parent / (path.name + "~")
    shutil.copy2(path, backup)
    write_in_place(path, text)
    backup.unlink()


def vim_backupcopy_no(path, text):
    # Rename the original to the backup, write a new file, drop the backup.
    # When vim cannot tell whether it may recreate the file with the same
    # owner, it first probes the directory with a file named 4913.
    probe = path.parent / "4913"
    probe.touch()
    probe.unlink()
    backup = path.parent / (path.name + "~")
    os.rename(path, backup)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, text.encode())
    os.fsync(fd)
    os.close(fd)
    backup.unlink()


def real_vim(backupcopy):
    def save(path, text):
        vim = shutil.which("vim") or shutil.which("vim.tiny")
        lines = ", ".join(f"'{line}'" for line in text.splitlines())
        run(
            vim, "-u", "NONE", "-i", "NONE", "-N", "-n", "-es",
            # backupskip= : the default skips backups for files under /tmp.
            "-c", "set writebackup nobackup backupskip= backupcopy=" + backupcopy,
            "-c", "%delete _",
            "-c", f"call setline(1, [{lines}])",
            "-c", "wq",
            str(path),
        )  # fmt: skip

    return save


def emacs(path, text):
    # The lock is a symlink to a target that does not exist; the first save of
    # a session renames the original to the backup (kept) and writes anew.
    lock = path.parent / (".#" + path.name)
    os.symlink("user@host.4242:1764331200", lock)
    os.rename(path, path.parent / (path.name + "~"))
    with open(path, "w") as f:
        f.write(text)
    lock.unlink()


def vscode_in_place(path, text):
    write_in_place(path, text)


def vscode_atomic(path, text):
    atomic_write(path, text, f".{path.name}.vsctmp")


def jetbrains_safe_write(path, text):
    tmp = path.parent / (path.name + "___jb_tmp___")
    old = path.parent / (path.name + "___jb_old___")
    tmp.write_text(text)
    os.rename(path, old)
    os.rename(tmp, path)
    old.unlink()


def ansible(path, text):
    atomic_write(path, text, ".ansible_tmpk2f9x_" + path.name)


def chef(path, text):
    atomic_write(path, text, f".chef-{path.name}20261128-4242-1x2y3z")


def sed_i(path, text):
    name, value = (line.split(": ")[1] for line in text.splitlines())
    run("sed", "-i", "-e", f"s/^name: .*/name: {name}/",
        "-e", f"s/^value: .*/value: {value}/", str(path))  # fmt: skip


def cp(path, text):
    src = path.parent.parent / "incoming.yaml"
    src.write_text(text)
    run("cp", str(src), str(path))  # writes into the existing inode


def mv(path, text):
    src = path.parent / "incoming.yaml"
    src.write_text(text)
    run("mv", str(src), str(path))


def install(path, text):
    src = path.parent.parent / "incoming.yaml"
    src.write_text(text)
    run("install", "-m", "0644", str(src), str(path))


def prepare_git(path, text):
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@example.invalid")
    cwd = path.parent
    run(*git, "init", "-q", "-b", "main", cwd=cwd)
    run(*git, "add", path.name, cwd=cwd)
    run(*git, "commit", "-q", "-m", "old", cwd=cwd)
    run(*git, "checkout", "-q", "-b", "other", cwd=cwd)
    path.write_text(text)
    run(*git, "commit", "-q", "-am", "new", cwd=cwd)
    run(*git, "checkout", "-q", "main", cwd=cwd)
    assert path.read_text() == OLD


def git_checkout(path, text):
    run("git", "checkout", "-q", "other", cwd=path.parent)


def k8s_publish(directory, text, stamp):
    """Kubernetes' AtomicWriter: a new timestamped directory, a ``..data_tmp``
    symlink to it renamed over ``..data``, then the old directory removed."""
    new = directory / f"..2026_11_28_12_00_{stamp:02d}.{stamp:09d}"
    new.mkdir()
    (new / "config.yaml").write_text(text)
    old = os.readlink(directory / "..data") if (directory / "..data").exists() else None
    os.symlink(new.name, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / "..data")
    if old is not None:
        shutil.rmtree(directory / old)


def prepare_k8s(path, text):
    path.unlink()
    k8s_publish(path.parent, OLD, 1)
    os.symlink("..data/config.yaml", path)


def kubernetes(path, text):
    k8s_publish(path.parent, text, 2)


SAVES = {
    "vim-backupcopy-yes": vim_backupcopy_yes,
    "vim-backupcopy-no": vim_backupcopy_no,
    "real-vim-backupcopy-yes": real_vim("yes"),
    "real-vim-backupcopy-no": real_vim("no"),
    "emacs": emacs,
    "vscode-in-place": vscode_in_place,
    "vscode-atomic": vscode_atomic,
    "jetbrains-safe-write": jetbrains_safe_write,
    "ansible": ansible,
    "chef": chef,
    "sed-i": sed_i,
    "cp": cp,
    "mv": mv,
    "install": install,
    "git-checkout": git_checkout,
    "kubernetes-atomic-writer": kubernetes,
}
PREPARE = {"git-checkout": prepare_git, "kubernetes-atomic-writer": prepare_k8s}
# Proof that a tool saved the way it is said to: into the same inode, or into
# a new one that existed before the old was gone (an unlinked inode's number
# may be reused at once, so delete-then-create tools are not checked).
SAME_INODE = {"vim-backupcopy-yes", "real-vim-backupcopy-yes", "vscode-in-place", "cp"}
NEW_INODE = {
    "vim-backupcopy-no", "real-vim-backupcopy-no", "emacs", "vscode-atomic",
    "jetbrains-safe-write", "ansible", "chef", "sed-i", "mv",
    "kubernetes-atomic-writer",
}  # fmt: skip


@pytest.fixture
def config(tmp_path):
    directory = tmp_path / "conf"
    directory.mkdir()
    path = directory / "config.yaml"
    path.write_text(OLD)
    return path


@pytest.mark.parametrize("case", list(SAVES))
def test_each_save_pattern_publishes_once(case, config, watch):
    if case.startswith("real-vim") and not (
        shutil.which("vim") or shutil.which("vim.tiny")
    ):
        pytest.skip("vim is not installed")
    PREPARE.get(case, lambda path, text: None)(config, new_text(case))
    watched = watch(config)
    before = watched.snapshot().generation
    inode = os.stat(config).st_ino

    SAVES[case](config, new_text(case))

    watched.wait_name(case)
    # Each change is read again at the next stat tick (and events may still
    # trail the save): wait for a read after the publish, which had the
    # watcher wrongly seen a second change would have published again.
    watched.wait_read_after(watched.reads())
    snap = watched.snapshot()
    assert snap.generation == before + 1
    assert snap.get("value") == 2
    if case in SAME_INODE | NEW_INODE:
        assert (os.stat(config).st_ino == inode) == (case in SAME_INODE)
    assert watched.publisher.last_error is None


def storm(path, texts, seconds):
    """Save ``path`` atomically, hundreds of times a second; returns the count."""
    saves = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        atomic_write(path, texts(saves), ".storm.tmp")
        saves += 1
        time.sleep(0.002)
    return saves


def test_storm_of_changing_saves_publishes_a_few_times(config, watch):
    watched = watch(config, debounce_ms=STORM_DEBOUNCE_MS)
    before = watched.snapshot().generation
    started = time.monotonic()
    saves = storm(config, lambda i: f"name: storm\nvalue: {i}\n", 2.0)
    elapsed = time.monotonic() - started
    last = f"name: storm\nvalue: {saves - 1}\n"
    wait_for(lambda: watched.snapshot().get("value") == saves - 1, "last save")
    final = watched.snapshot().generation
    watched.resave_and_wait(config, last)
    snap = watched.snapshot()
    assert snap.generation == final  # nothing published after the last save
    published = snap.generation - before
    print(f"{saves} saves in {elapsed:.2f} s -> {published} generations")
    # Whatever the machine's speed: the last save is what stays published.
    assert snap.get("value") == saves - 1
    assert 1 <= published <= saves
    if saves / elapsed < 100:
        pytest.skip(f"no storm: this machine saved {saves / elapsed:.0f} times/s")
    # One publish per max-wait window while the storm lasts, one at its end,
    # and one spare for a stall of the saving thread that looks quiet.
    assert published <= elapsed * 1000 / MAX_WAIT_MS + 2


def test_storm_of_unchanged_saves_publishes_nothing(config, watch):
    watched = watch(config, debounce_ms=STORM_DEBOUNCE_MS)
    before = watched.snapshot().generation
    saves = storm(config, lambda i: OLD, 2.0)
    # Saves with a different mtime each time keep the stat check busy too.
    watched.resave_and_wait(config, OLD)
    assert watched.snapshot().generation == before
    assert rejected_count(watched.segment.buffer) == 0
    if saves < 200:
        pytest.skip(f"no storm: this machine saved {saves} times in 2 s")


def test_directory_deleted_then_recreated(tmp_path, config, watch, caplog):
    caplog.set_level(logging.INFO, logger="hotcfg")
    watched = watch(config, mode="events")
    directory = config.parent
    before = watched.snapshot().generation
    run("rm", "-rf", str(directory))
    wait_for(lambda: "not found" in (watched.publisher.last_error or ""), "rejection")
    assert watched.snapshot().get("name") == "before"  # last good kept
    wait_for(lambda: "is gone" in caplog.text, "the warning")
    run("sh", "-c", f'mkdir "{directory}" && printf "{new_text("back")}" > "{config}"')
    watched.wait_name("back")
    wait_for(lambda: observer_watching(directory), "a watch on the new directory")
    # Events flow again from the new directory (the re-armed watch).
    write_in_place(config, new_text("again"))
    watched.wait_name("again")
    assert watched.snapshot().generation == before + 2


def test_directory_replaced_in_one_go(config, watch):
    """rm -rf, mkdir and write faster than a stat tick: the old watch is dead
    although the name is back; the new directory's identity gives it away."""
    watched = watch(config, mode="events")
    directory = config.parent
    run("sh", "-c", f'rm -rf "{directory}" && mkdir "{directory}" && '
        f'printf "{new_text("swapped")}" > "{config}"')  # fmt: skip
    watched.wait_name("swapped")
    wait_for(lambda: observer_watching(directory), "a watch on the new directory")
    write_in_place(config, new_text("edited"))
    watched.wait_name("edited")


def test_kubernetes_target_directory_follows_swaps(config, watch):
    prepare_k8s(config, None)
    watched = watch(config, mode="events")
    for stamp in (2, 3, 4):
        k8s_publish(config.parent, new_text(f"k8s-{stamp}"), stamp)
        watched.wait_name(f"k8s-{stamp}")
        # The watch follows the symlink to the current timestamped directory.
        target = os.path.dirname(os.path.realpath(config))
        wait_for(lambda t=target: observer_watching(t), "a watch on the target")


def test_symlink_target_directory_is_watched(tmp_path, config, watch):
    """config.yaml -> ../shared/app.yaml: an edit of the target is an event
    in the target's directory only. The stat check is made too slow to
    matter here, so only that watch can deliver it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "app.yaml").write_text(OLD)
    config.unlink()
    config.symlink_to("../shared/app.yaml")
    watched = watch(config, mode="events", poll_ms=60_000)
    write_in_place(shared / "app.yaml", new_text("target-edited"))
    watched.wait_name("target-edited")


def test_poll_mode_uses_stat_only(config, watch, caplog):
    caplog.set_level(logging.DEBUG, logger="hotcfg")
    watched = watch(config, mode="poll")
    assert watchdog_observers() == []
    watcher = watched.publisher._watcher
    ticks = []
    tick = watcher._tick  # the loop looks it up at each tick: count them
    watcher._tick = lambda: (ticks.append(1), tick())
    wait_for(lambda: len(ticks) >= 5, "five stat ticks")
    # Nothing changed, so the file was not read again ("unchanged" is logged
    # for each read that found the same content).
    assert "unchanged" not in caplog.text
    atomic_write(config, new_text("polled"), ".tmp")
    watched.wait_name("polled")
    write_in_place(config, new_text("polled-again"))
    watched.wait_name("polled-again")


def test_dead_observer_is_restarted_and_reported(config, watch, caplog):
    watched = watch(config, mode="events")
    [observer] = watchdog_observers()
    observer.stop()
    observer.join(10)
    wait_for(lambda: "stopped unexpectedly" in caplog.text, "the error")
    wait_for(lambda: observer_watching(config.parent), "a restarted observer")
    assert observer not in watchdog_observers()
    atomic_write(config, new_text("after-restart"), ".tmp")
    watched.wait_name("after-restart")


def test_dead_emitter_is_restarted_and_reported(config, watch, caplog):
    watched = watch(config, mode="events")
    [observer] = watchdog_observers()
    for emitter in list(observer.emitters):
        emitter.stop()
        with contextlib.suppress(RuntimeError):
            emitter.join(10)
    wait_for(lambda: "stopped unexpectedly" in caplog.text, "the error")
    wait_for(lambda: observer_watching(config.parent), "a restarted emitter")
    write_in_place(config, new_text("after-emitter"))
    watched.wait_name("after-emitter")


def test_watcher_outlives_a_failing_callback(config, caplog):
    """An exception from the publish callback is logged; the next change is
    still delivered (the watcher thread did not die of it)."""
    calls = []

    def on_change():
        calls.append(config.read_text())
        if len(calls) == 1:
            raise RuntimeError("publish failed")

    watcher = Watcher(
        str(config),
        debounce_ms=DEBOUNCE_MS,
        on_change=on_change,
        poll_interval_ms=POLL_MS,
        mode="events",
    )
    watcher.start()
    try:
        atomic_write(config, new_text("first"), ".tmp")
        wait_for(lambda: "publish failed" in caplog.text, "the logged error")
        atomic_write(config, new_text("second"), ".tmp")
        wait_for(lambda: new_text("second") in calls, "the second change")
    finally:
        watcher.stop()
    assert "error while handling a change" in caplog.text


def test_a_stat_change_is_read_again_at_the_next_tick(config):
    """Timestamps are coarser than writes: a same-size rewrite right after a
    stat may leave it unchanged, so each change is read once more. Driven
    tick by tick (no thread), so the two reads cannot merge into one burst."""
    watcher = Watcher(
        str(config),
        debounce_ms=0,
        on_change=lambda: None,
        poll_interval_ms=POLL_MS,
        mode="poll",
    )
    watcher._fingerprint = fingerprint(str(config))
    far = time.monotonic() + 3600

    def tick_reads():
        watcher._tick()
        return watcher._debouncer.due(far)

    assert not tick_reads()
    write_in_place(config, new_text("racy"))
    assert [tick_reads(), tick_reads(), tick_reads()] == [True, True, False]


def move_pairing_delays(directory):
    """The rename-pairing wait of every emitter watching ``directory``."""
    buffers = [
        emitter._inotify
        for observer in watchdog_observers()
        for emitter in observer.emitters
        if emitter.watch.path == str(directory)
    ]
    # watchdog 7 holds the queue in a grouper thread, watchdog 6 in the buffer
    # and calls the wait delay_sec.
    queues = [
        getattr(buffer, "_move_event_grouper", buffer)._queue for buffer in buffers
    ]
    return [
        queue.delay if hasattr(queue, "delay") else queue.delay_sec for queue in queues
    ]


def test_rename_events_are_not_held_for_pairing(config, watch):
    """watchdog holds a rename's first half up to 0.5 s to pair it, and every
    event behind it waits: a config moved out of the directory and written
    anew was published half a second late. The watcher turns that wait off
    (benchmarks/propagation.py --write away measures the latency)."""
    watched = watch(config)
    assert move_pairing_delays(config.parent) == [0]
    config.rename(config.parent.parent / "moved-away.yaml")
    config.write_text(new_text("away"))
    wait_for(lambda: watched.reader.refresh().get("name") == "away", "the new file")
