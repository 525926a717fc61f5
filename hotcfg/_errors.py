"""The exceptions hotcfg raises, and only those (with the advice that ends
every "no configuration source": :data:`HOW_TO_CONFIGURE`).

Every error derives from :class:`HotcfgError` and, where one fits, from the
builtin that callers already catch::

    HotcfgError
     ├── ConfigError (ValueError)          a document was rejected; the live one stays
     │    ├── SourceError                  cannot be read: missing, too big, not a file
 │    │    └── UnreachableError         the store (etcd, HTTP) cannot answer now
     │    ├── ParseError                   not valid YAML / JSON / TOML
     │    └── ValidationError              parsed, but wrong shape, type or value
     ├── CorruptSegmentError (ValueError)  bytes that are not a consistent segment
     ├── CorruptHistoryError (ValueError)  a history file that cannot be trusted
     ├── ControlError (OSError)            the control socket refused or failed
     ├── SegmentError (OSError)            shared memory cannot be created or trusted
     ├── MissingKeyError (KeyError)        a required key is absent
     └── NotConfiguredError (RuntimeError) no source was given to this process

Messages name the source, the place (``line:column`` or a key path) and the
reason, and never quote the document's content: configuration files hold
secrets, and these messages end up in logs and in the shared segment.

This module imports nothing from hotcfg.
"""

from __future__ import annotations


class HotcfgError(Exception):
    """The root of every error hotcfg raises."""


class ConfigError(HotcfgError, ValueError):
    """A configuration document was rejected.

    Attributes:
        source: where the document came from (a path or a label).
        line: 1-based line of the problem, when the format reports one.
        column: 1-based column of the problem, when known.
        key_path: dotted path of the offending key, when the problem is a value.
        reason: what is wrong, without the document's content.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str = "<config>",
        line: int | None = None,
        column: int | None = None,
        key_path: str | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        self.key_path = key_path
        super().__init__(self._format())

    def _format(self) -> str:
        place = self.source
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        if self.key_path is not None:
            return f"{place}: at {self.key_path or '<top level>'}: {self.reason}"
        return f"{place}: {self.reason}"


class SourceError(ConfigError):
    """The source could not be read (missing, too large, not a regular file)."""


class UnreachableError(SourceError):
    """The store holding the source (etcd, an HTTP server) cannot be reached
    or cannot answer now; a master starting meanwhile may serve its cache
    (``_master.coldstart``)."""


class ParseError(ConfigError):
    """The document is not valid in its format."""


class ValidationError(ConfigError):
    """The document parsed but its shape, types or values are not accepted."""


class CorruptSegmentError(HotcfgError, ValueError):
    """The bytes read are not a consistent segment (torn, truncated or foreign)."""


class CorruptHistoryError(HotcfgError, ValueError):
    """The history file is not one hotcfg wrote (truncated, altered or foreign)."""


class ControlError(HotcfgError, OSError):
    """The master's control socket cannot be reached, or refused a request."""


class SegmentError(HotcfgError, OSError):
    """The shared-memory segment cannot be created, grown or trusted."""


class MissingKeyError(HotcfgError, KeyError):
    """A key the caller required is absent from the configuration."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; a plain message reads better.
        return str(self.args[0]) if self.args else ""


#: How to give a process a source: the end of every "no configuration
#: source" message, so that whoever reads it, in an app's log or in a failed
#: test, learns the way that fits them.
HOW_TO_CONFIGURE = (
    "for an app, set HOTCFG_SOURCE (a YAML, JSON or TOML file, an etcd:// key "
    "or an http(s):// URL) in its environment, or call "
    "hotcfg.configure(source=...) before the first read; in tests, wrap the "
    "code in hotcfg.testing.use_config({...})"
)


class NotConfiguredError(HotcfgError, RuntimeError):
    """hotcfg was used in a process that has no configuration source.

    ``hotcfg.get(key, default)`` raises it too: the default stands for a key
    absent from a configuration, not for a missing configuration, which is
    a deployment mistake that a default would hide. The message ends with
    how to configure an app, and how to give a test a configuration
    (:func:`hotcfg.testing.use_config`).
    """
