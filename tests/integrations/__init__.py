"""Framework integrations, each exercised with the framework's own test
client in a child process (``tests.process.run_script``)."""

import textwrap

#: Prepended to the child scripts: save a file as editors do, and wait until
#: this process's reader has switched to a value.
HELPERS = textwrap.dedent(
    """
    import os, time
    from hotcfg import _api

    def write(path, text):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def wait_for(key, value):
        deadline = time.monotonic() + 20
        while _api.reader().refresh().get(key) != value:
            assert time.monotonic() < deadline, value
            time.sleep(0.01)
    """
)
