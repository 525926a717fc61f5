"""A read at import time is warned about, once per call site, naming it;
a read in a request, in a function called later, or in another thread
than the importing one is not. Each case in a child process of its own:
its modules are imported for real, by ``import``."""

import re
import textwrap

from . import run_script_output

WARNING = "runs while a module is being imported"

# Line numbers matter: the warning names them.
FROZEN_MODULE = textwrap.dedent(
    """\
    import hotcfg

    FROZEN = hotcfg.get("value")
    for _ in range(3):
        AGAIN = hotcfg.snapshot()  # one site, one warning
    REQUIRED = hotcfg.require("value")
    STALE_ON_PURPOSE = hotcfg.get("value", volatile=True)


    def later():
        return hotcfg.get("value"), hotcfg.snapshot()["value"]
    """
)

IMPORTER = textwrap.dedent(
    """
    import sys

    sys.path.insert(0, sys.argv[1])
    import frozen_module

    print(frozen_module.FROZEN, frozen_module.later()[0])
    """
)


def test_reads_at_import_warn_once_per_site_with_file_and_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    (tmp_path / "frozen_module.py").write_text(FROZEN_MODULE)
    out, err = run_script_output(IMPORTER, config, tmp_path)
    assert out == "one one"
    where = tmp_path / "frozen_module.py"
    warnings = [line for line in err.splitlines() if WARNING in line]
    site = re.compile(r"hotcfg\.(\w+)\(\) at (.+):(\d+) ")
    sites = [site.match(w).groups() for w in warnings]
    assert sites == [
        ("get", str(where), "3"),
        ("snapshot", str(where), "5"),
        ("require", str(where), "6"),
        ("get", str(where), "7"),
    ]
    assert all("read once, now, and never changes" in w for w in warnings)


# A module imported inside a request (a view's lazy import), and one whose
# import starts a thread that reads: neither read is made at import time.
QUIET_MODULES = {
    "imported_in_request.py": textwrap.dedent(
        """\
        import hotcfg

        IN_REQUEST = hotcfg.get("value")
        """
    ),
    "reads_in_a_thread.py": textwrap.dedent(
        """\
        import threading

        import hotcfg

        seen = []
        reader = threading.Thread(target=lambda: seen.append(hotcfg.get("value")))
        reader.start()
        reader.join()
        """
    ),
    "defines_only.py": textwrap.dedent(
        """\
        import hotcfg


        def later():
            return hotcfg.get("value")
        """
    ),
}

QUIET_IMPORTER = textwrap.dedent(
    """
    import sys

    from hotcfg import _api

    sys.path.insert(0, sys.argv[1])
    with _api.RequestScope():  # as a framework integration pins a request
        import imported_in_request
    import reads_in_a_thread
    import defines_only

    print(imported_in_request.IN_REQUEST, reads_in_a_thread.seen,
          defines_only.later())
    """
)


def test_reads_in_a_request_a_thread_or_later_do_not_warn(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("value: one\n")
    for name, text in QUIET_MODULES.items():
        (tmp_path / name).write_text(text)
    out, err = run_script_output(QUIET_IMPORTER, config, tmp_path)
    assert out == "one ['one'] one"
    assert WARNING not in err
