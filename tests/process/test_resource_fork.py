"""A resource built before a fork stays the parent's: the child builds its own
and never closes the parent's (whose sockets it shares)."""

import textwrap

from . import run_script

SCRIPT = textwrap.dedent(
    """
    import os
    import hotcfg

    built, closed = [], []

    def factory(size):
        built.append((os.getpid(), size))
        return object()

    handle = hotcfg.resource("pool", factory, lambda r: closed.append(os.getpid()))
    with handle.use() as parent_pool:
        pass
    pid = os.fork()
    if pid == 0:
        with handle.use() as child_pool:
            ok = child_pool is not parent_pool and not closed
            ok = ok and handle.stats().built == 1 and len(built) == 2
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    with handle.use() as again:
        print(os.waitstatus_to_exitcode(status), again is parent_pool, closed)
    """
)


def test_child_builds_its_own_resource(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("pool: 3\n")
    assert run_script(SCRIPT, config) == "0 True []"
