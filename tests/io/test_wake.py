"""Wake-up sockets (``_worker.wake``): a sender reaches a bound reader by its
slot's path, also past the 107-byte limit of a socket address, says when a
slot has no socket (so the publisher signals it instead), and never removes
what is not a socket of its own."""

import os
import socket

import pytest

from hotcfg._worker import wake


def _received(sock):
    sock.settimeout(5)
    return sock.recv(16)


@pytest.mark.parametrize("depth", [1, 12])
def test_a_sender_wakes_the_socket_of_a_slot(tmp_path, depth):
    directory = tmp_path.joinpath(*["d" * 9] * depth)
    directory.mkdir(parents=True)
    base = str(directory / "svc-peers-0000")
    assert (len(base) > 107) == (depth > 1)
    bound = wake.WakeSocket(wake.socket_path(base, 3))
    sender = wake.Sender(base)
    try:
        assert oct(os.stat(bound.path).st_mode & 0o777) == "0o600"
        assert sender(3) is True
        assert _received(bound.receive) == b"\1"
        bound.send.send(b"\0")  # the applier's own wake-up
        assert _received(bound.receive) == b"\0"
        assert sender(4) is False  # no socket: the caller signals instead
        bound.unlink()
        assert sender(3) is False
    finally:
        sender.close()
        bound.receive.close()
        bound.send.close()


def test_a_stale_socket_is_replaced_and_nothing_else_is_removed(tmp_path):
    path = wake.socket_path(str(tmp_path / "svc"), 0)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(path)
    stale.close()  # its name stays: a process gone without unlinking it
    sender = wake.Sender(str(tmp_path / "svc"))
    assert sender(0) is False
    sender.close()
    bound = wake.WakeSocket(path)
    bound.receive.close()
    bound.send.close()
    other = wake.socket_path(str(tmp_path / "svc"), 1)
    with open(other, "w") as f:
        f.write("not a socket")
    with pytest.raises(OSError, match="Address already in use"):
        wake.WakeSocket(other)
    with open(other) as f:
        assert f.read() == "not a socket"


def test_a_dead_services_wake_up_sockets_go_with_its_files(tmp_path):
    from hotcfg._master import election

    directory = tmp_path / "seg"
    directory.mkdir(mode=0o700)
    dead = str(directory / "svc-peers-dead0000")
    for suffix in (".publisher", ".slots"):
        with open(dead + suffix, "w"):
            pass
        os.chmod(dead + suffix, 0o600)
    for slot in (0, 7):
        bound = wake.WakeSocket(wake.socket_path(dead, slot))
        bound.receive.close()
        bound.send.close()
    keep = str(directory / "svc-peers-live0000")
    removed = election.remove_dead_services(str(directory), "svc", keep=keep)
    assert removed == [dead]
    assert os.listdir(directory) == []
