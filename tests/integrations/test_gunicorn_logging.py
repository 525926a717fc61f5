"""route_logs: hotcfg's records through Gunicorn's own error log, only when
logging is not configured otherwise (real Gunicorn Config and Logger)."""

import logging
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from hotcfg.integrations.gunicorn import route_logs


@pytest.fixture
def clean_logging():
    """The hotcfg and root loggers as found, restored afterwards."""
    hotcfg_logger, root = logging.getLogger("hotcfg"), logging.getLogger()
    saved = (hotcfg_logger.handlers[:], hotcfg_logger.level,
             hotcfg_logger.propagate, root.handlers[:])  # fmt: skip
    hotcfg_logger.handlers, root.handlers = [], []
    hotcfg_logger.setLevel(logging.NOTSET)
    yield hotcfg_logger
    hotcfg_logger.handlers, hotcfg_logger.level = saved[0], saved[1]
    hotcfg_logger.propagate, root.handlers = saved[2], saved[3]


@pytest.fixture
def gunicorn_server(tmp_path):
    """Make a stand-in for the arbiter with Gunicorn's real Logger; its
    handlers (on the global gunicorn.* loggers) are closed afterwards."""
    made = []

    def make(level):
        cfg = Config()
        cfg.set("errorlog", str(tmp_path / "error.log"))
        cfg.set("loglevel", level)
        made.append(Logger(cfg))
        return SimpleNamespace(log=made[-1]), tmp_path / "error.log"

    yield make
    for log in made:
        for logger in (log.error_log, log.access_log):
            for handler in logger.handlers[:]:
                handler.close()
                logger.removeHandler(handler)


def without_root_handlers(action):
    """Run ``action`` with no root handler (pytest adds its own per test)."""
    root = logging.getLogger()
    saved, root.handlers = root.handlers[:], []
    try:
        action()
    finally:
        root.handlers = saved


def test_records_follow_gunicorns_level_and_file(gunicorn_server, clean_logging):
    server, path = gunicorn_server("warning")
    without_root_handlers(lambda: route_logs(server))
    logging.getLogger("hotcfg.publisher").info("hotcfg: published generation 2")
    logging.getLogger("hotcfg.publisher").error("hotcfg: rejected x.yaml:1:1: bad")
    server.log.error_log.setLevel(logging.INFO)  # as a HUP with --log-level info
    logging.getLogger("hotcfg.watch").info("hotcfg: watching x.yaml")
    for handler in server.log.error_log.handlers:
        handler.flush()
    lines = path.read_text().splitlines()
    assert [line.split("] ", 3)[-1] for line in lines] == [
        "hotcfg: rejected x.yaml:1:1: bad",
        "hotcfg: watching x.yaml",
    ]
    assert "[ERROR]" in lines[0]


def test_configured_logging_is_left_alone(gunicorn_server, clean_logging):
    server, _ = gunicorn_server("info")

    def configured_then_routed():
        logging.getLogger().addHandler(logging.NullHandler())
        route_logs(server)

    without_root_handlers(configured_then_routed)
    assert clean_logging.handlers == []
    assert clean_logging.propagate is True
