"""The control socket's peer rule, alone: only the master's own uid may
talk to it; root is no exception, and an unknown uid is refused. Pure, so
it is tested whoever runs the suite (the kernel's side, a real peer of
another uid, needs root: tests/process/test_history.py)."""

import pytest

from hotcfg._master.control import refusal


@pytest.mark.parametrize("uid", [0, 1000, 65534])
def test_the_masters_own_uid_is_allowed(uid):
    assert refusal(uid, own_uid=uid) is None


@pytest.mark.parametrize(
    ("peer", "own"),
    [
        (1001, 1000),  # another user
        (0, 1000),  # root, to a master that is not root's
        (1000, 0),  # a user, to root's master
        (65534, 1000),  # nobody
        (1000 + 2**16, 1000),  # equal in the low 16 bits
    ],
)
def test_any_other_uid_is_refused_naming_both(peer, own):
    assert refusal(peer, own_uid=own) == (
        f"uid {peer} is not the service's uid {own}; refused"
    )


def test_a_peer_whose_uid_cannot_be_read_is_refused():
    assert refusal(None, own_uid=1000) == (
        "cannot verify the peer's uid on this platform; refused"
    )
