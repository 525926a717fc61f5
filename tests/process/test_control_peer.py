"""The control server applies its peer rule to the uid the kernel reports,
whoever runs the suite: a server whose service uid is not the test's own
refuses the test's real connection before reading its request. (A real
peer of another uid needs root: tests/process/test_history.py.)"""

import os

import pytest

from hotcfg._errors import ControlError
from hotcfg._master import control as _control
from hotcfg._master.publisher import Publisher
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource


@pytest.fixture
def publisher(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("value: one\n")
    cfg = Settings.resolve(source=str(config), segment_dir=str(tmp_path / "segs"))
    segment = Segment.create(cfg.resolved_segment_dir, name=cfg.name)
    publisher = Publisher(FileSource.from_settings(cfg), segment, cfg)
    publisher.publish_from_source(raise_errors=True)
    yield publisher
    publisher.close()


def test_a_peer_of_another_uid_than_the_services_is_refused(
    publisher, tmp_path, caplog
):
    (tmp_path / "config.yaml").write_text("value: two\n")
    publisher.publish_from_source(raise_errors=True)
    server = _control.start(publisher)
    assert server is not None
    assert _control.request(server.path, {"cmd": "history"})["live"] == 2
    me = os.geteuid()
    server.own_uid = me + 1  # the service runs as another uid than this peer
    refused = f"uid {me} is not the service's uid {me + 1}; refused"
    with pytest.raises(ControlError, match=refused):
        _control.request(server.path, {"cmd": "rollback", "to": None})
    assert publisher.generation == 2  # the rollback was never acted on
    assert refused in caplog.text
