"""Set and change hotcfg's configuration in your own tests, without Gunicorn.

::

    from hotcfg.testing import use_config

    def test_banner_follows_the_flag():
        with use_config({"feature": {"banner": True}}) as config:
            assert views.banner() == "on"
            config.set({"feature": {"banner": False}})
            assert views.banner() == "off"

The code under test calls ``hotcfg.get()`` as it does in production; each
change goes through the real publisher (parsing, ``HOTCFG_VALIDATOR``,
``HOTCFG_SCHEMA`` and ``HOTCFG_MODEL`` checks, encoding) and the real
reader, so change callbacks run and a config your validators refuse raises
here. Leaving the block removes everything it created and gives back the
state hotcfg had before, so tests do not leak into each other. As a pytest
fixture::

    @pytest.fixture
    def config():
        with use_config({"feature": {"banner": True}}) as config:
            yield config
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from . import _runtime
from ._settings import Settings

__all__ = ["TestConfig", "use_config"]


class TestConfig:
    """The configuration of one :func:`use_config` block.

    Attributes:
        path: the file hotcfg reads (a private copy; yours is never written).
    """

    __test__ = False  # not a test class, for pytest's collector

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self._fmt = fmt

    @property
    def generation(self) -> int:
        """The generation the code under test sees now."""
        return _runtime.reader().refresh().generation

    def set(self, data: Mapping[str, Any] | str | bytes) -> int:
        """Publish ``data`` as the whole new configuration.

        Args:
            data: a mapping, or the file's text as it should be (to test
                what a broken file does).

        Returns:
            The generation the code under test sees afterwards (unchanged
            when ``data`` is the same content).

        Raises:
            ConfigError: the content is refused (parse error, validator,
                schema or model), with the same message the master would log.
        """
        _write(self.path, self._fmt, data)
        _runtime.ensure_publisher(start_watching=False).publish_from_source(
            raise_errors=True
        )
        return self.generation

    def update(self, path: str, value: Any) -> int:
        """Change the value at a dotted ``path`` and publish the result.

        Returns:
            The generation the code under test sees afterwards.
        """
        data = _runtime.reader().refresh().to_dict()
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        return self.set(data)


@contextmanager
def use_config(
    data: Mapping[str, Any] | str | os.PathLike[str],
    **settings: Any,
) -> Iterator[TestConfig]:
    """Give the code under test a configuration, in this process.

    Args:
        data: the configuration as a mapping, or the path of a config file
            (a copy is used, so :meth:`TestConfig.set` never writes yours).
        **settings: any :func:`hotcfg.configure` argument, such as
            ``validator="myapp.config:check"`` or ``model=...``; the
            ``HOTCFG_*`` environment applies as usual for the rest.

    Yields:
        The :class:`TestConfig` to change the configuration with.

    Raises:
        ConfigError: ``data`` is refused, or a setting is invalid.
    """
    directory = Path(tempfile.mkdtemp(prefix="hotcfg-test-"))
    try:
        if isinstance(data, Mapping):
            path = directory / "config.json"
            _write(path, "json", data)
        else:
            original = Path(data)
            path = directory / original.name
            shutil.copyfile(original, path)
        cfg = Settings.resolve(
            **{"segment_dir": str(directory / "segments"), **settings},
            source=str(path),
        )
        assert cfg.format is not None
        with _runtime.isolated(cfg):
            _runtime.ensure_publisher(start_watching=False)
            yield TestConfig(path, cfg.format)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write(path: Path, fmt: str, data: Mapping[str, Any] | str | bytes) -> None:
    if isinstance(data, (str, bytes)):
        text = data.encode() if isinstance(data, str) else data
    elif fmt == "json":
        text = json.dumps(data).encode()
    elif fmt == "yaml":
        text = yaml.safe_dump(dict(data)).encode()
    else:
        raise TypeError(f"give the {fmt} file's text as a string to set it")
    # Replaced whole, the way editors save, so no reader sees half a file.
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(text)
    os.replace(partial, path)
