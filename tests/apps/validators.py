"""User validators for the tests."""

import os
import sys
import time


def no_forbidden(data):
    if data.get("value") == "forbidden":
        raise ValueError("value may not be 'forbidden'")
    return data


class Interrupted(BaseException):
    """A BaseException subclass that is neither SystemExit nor KeyboardInterrupt."""


def misbehaving(data):
    """Fails in the ways user code does when ``value`` asks it to.

    ``exit``: ``sys.exit(3)``, as command-line style checks do;
    ``interrupt``: a custom ``BaseException``; ``ctrl-c``: KeyboardInterrupt
    (outside the main thread); ``hang``: blocks until the file named by
    ``HANG_GATE`` exists. Every value it is given is appended to the file
    named by ``VALIDATED_LOG``, so a test can tell what was validated.
    """
    value = data.get("value")
    log = os.environ.get("VALIDATED_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{value}\n")
    if value == "exit":
        sys.exit(3)
    if value == "interrupt":
        raise Interrupted("stop everything")
    if value == "ctrl-c":
        raise KeyboardInterrupt
    if value == "hang":
        deadline = time.monotonic() + 60
        while not os.path.exists(os.environ["HANG_GATE"]):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    return data


def not_listed(data):
    """Refuses a ``value`` listed in the file named by ``REFUSED_VALUES``
    (one a line), read at each call: rules that change while the master
    runs, as an allow-list or a deny-list kept elsewhere does."""
    with open(os.environ["REFUSED_VALUES"]) as f:
        refused = set(f.read().split())
    if data.get("value") in refused:
        raise ValueError("value is on today's refused list")
    return data
