"""Many reader processes against a writer that publishes without pause.

Each payload carries a digest of its own content, so a reader can tell a torn
copy from a good one without trusting the segment's CRC. The writer varies
the payload size and now and then grows the segment (readers remap). Half
the readers count attempts through the codec, half are the workers' own
``Reader`` and count the errors it logs. Every read is checked: its values
all from one write, and that write the header's generation.
"""

import json
import textwrap

from . import run_script

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, logging, os, sys, traceback
    from hotcfg import _runtime
    from hotcfg._segment import layout
    from hotcfg._segment import payload as _payload
    from hotcfg._worker.reader import Reader
    from hotcfg._errors import CorruptSegmentError

    READERS, READS, LIMIT = int(sys.argv[1]), int(sys.argv[2]), 1000
    SWITCHES = READS // 20

    def digest(n, pad):
        return hashlib.blake2b(f"{n}:{pad}".encode(), digest_size=8).hexdigest()

    def document(n):
        size = (n * 7919) % 20_000
        if n % 200 == 0:
            size = min(n * 2_000, 3_000_000)  # grows the segment a few times
        pad = chr(97 + n % 26) * size
        return {"n": n, "pad": pad, "digest": digest(n, pad)}

    def whole(data, generation):
        # Every value from one write, and that write the header's generation:
        # document(n) is published as generation n + 1 (the file's n: 0 is 1).
        return (
            data.get("digest") == digest(data.get("n"), data.get("pad"))
            and data.get("n") == generation - 1
        )

    def intact(payload, generation):
        try:
            data = _payload.decode_payload(payload)
        except CorruptSegmentError:
            return False
        return whole(data, generation)

    def new_stats():
        return dict(torn=0, failed=0, decode_failed=0, backwards=0, checked=0,
                    generations=0)

    def read_once(view):
        # Reader._read's logic, one attempt at a time, so attempts can be counted.
        for attempt in range(1, LIMIT + 1):
            if layout.read_capacity(view.buffer) > len(view.buffer):
                view.remap_if_grown()
            seq = layout._load_u64(view.buffer, layout._SEQ_INDEX)
            try:
                header, payload = layout.read_consistent(view.buffer, attempts=1)
            except CorruptSegmentError:
                os.sched_yield()
                continue
            # A header update during the copy: the old seqlock rule's retry.
            moved = layout._load_u64(view.buffer, layout._SEQ_INDEX) != seq
            return header, payload, attempt, moved
        return None, None, LIMIT, False

    def reader(view, out):
        stats = new_stats()
        stats.update(max_attempts=0, moved=0, header_failed=0)
        last = 0
        for _ in range(READS):
            header, payload, attempts, moved = read_once(view)
            stats["max_attempts"] = max(stats["max_attempts"], attempts)
            stats["moved"] += moved
            if header is None:
                stats["failed"] += 1
                continue
            if header.generation > 1:
                stats["checked"] += 1
                stats["torn"] += not intact(payload, header.generation)
            try:  # the CLI's path: three attempts, no pause
                _payload.decode(view.buffer, attempts=3)
            except CorruptSegmentError:
                # A segment grown past this mapping since the read above is
                # out of reach of a decode without a remap, not a starved read.
                grown = layout.read_capacity(view.buffer) > len(view.buffer)
                stats["decode_failed"] += not grown
            stats["backwards"] += header.generation < last
            stats["generations"] += header.generation != last
            last = header.generation
            # The status path: the seqlocked header, as the CLI reads it.
            try:
                view.header()
            except CorruptSegmentError:
                stats["header_failed"] += 1
        os.write(out, (json.dumps(stats) + "\\n").encode())

    def worker_reader(view, out):
        errors = []
        handler = logging.Handler(logging.ERROR)
        handler.emit = errors.append
        logging.getLogger("hotcfg").addHandler(handler)
        reader, last = Reader(view), 0
        stats = new_stats()
        # A refresh that finds the generation unchanged costs a fraction of a
        # microsecond and reads nothing: READS of them would be over before
        # the first publish. So count the switches, the reads that read.
        while stats["checked"] < SWITCHES:
            snap = reader.refresh()
            if snap.generation != last and snap.generation > 1:
                stats["checked"] += 1
                stats["torn"] += not whole(snap, snap.generation)
            stats["backwards"] += snap.generation < last
            stats["generations"] += snap.generation != last
            last = snap.generation
        stats["failed"] = len(errors)
        os.write(out, (json.dumps(stats) + "\\n").encode())

    publisher = _runtime.ensure_publisher(start_watching=False)
    r, w = os.pipe()
    pids = []
    for i in range(READERS):
        view = publisher.segment.view()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                (reader if i % 2 else worker_reader)(view, w)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        view.close()
        pids.append(pid)
    os.close(w)
    n, running = 0, set(pids)
    while running:
        n += 1
        publisher.publish(document(n))
        for pid in list(running):
            if os.waitpid(pid, os.WNOHANG)[0]:
                running.discard(pid)
    totals = [json.loads(line) for line in os.fdopen(r).read().splitlines()]
    print(json.dumps(dict(publishes=n, readers=totals)))
    """
)


def test_no_torn_reads_and_no_starvation(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("n: 0\n")
    readers, reads = 6, 6_000
    result = json.loads(run_script(SCRIPT, config, readers, reads))
    print(result)  # the numbers for the record (pytest -s)
    stats = result["readers"]
    assert len(stats) == readers
    assert sum(s["torn"] for s in stats) == 0
    assert sum(s["failed"] for s in stats) == 0
    assert sum(s["decode_failed"] for s in stats) == 0
    assert sum("max_attempts" in s for s in stats) == readers // 2
    assert sum(s.get("header_failed", 0) for s in stats) == 0
    assert sum(s["backwards"] for s in stats) == 0
    # The zeros above count something: every reader checked most of its reads
    # against the content's digest and generation, across many generations.
    for s in stats:
        assert s["checked"] >= reads // 20, s
        assert s["generations"] >= 10, s
    # Each reader finished all its reads while the writer never paused.
    assert result["publishes"] >= 100
