"""The canary running on an etcd key, as ``hotcfg status --fleet`` shows
it above the fleet's table: who pushed it, for which hosts, and which of
the masters it selects are not ready yet (``fleet_view`` words them, as
``hotcfg promote`` checks them). The etcd modules are imported when it
runs.
"""

from __future__ import annotations

from typing import Any

from .._errors import SourceError, UnreachableError
from .._settings import Settings
from .._sources.locations import parse_etcd
from .times import local, utc


def canary_status(
    url: str, settings: Settings, records: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The canary running on ``url``'s key for ``status --fleet``: its
    JSON (None: none) and the lines above the table (the canary, then the
    selected masters not ready). A canary that cannot be read is one line
    saying so.

    Raises:
        SourceError: unreachable, or refused.
    """
    from .._sources.etcd import rollout as _rollout
    from .._sources.etcd import txn as _txn
    from .._sources.etcd.access import EtcdAccess
    from .fleet_view import canary_line, canary_not_ready

    target = parse_etcd(url)
    if target.is_prefix:
        return None, []
    start, end = _rollout.watch_range(target.key)
    try:
        now = _txn.read_range(
            target,
            start.decode(),
            end.decode(),
            access=EtcdAccess.from_settings(settings),
            timeout_s=settings.etcd_timeout_ms / 1000.0,
            max_bytes=settings.max_bytes * 3 + 65536,
        )
    except UnreachableError:
        raise
    except SourceError as exc:  # may read the records, not the key's range
        return None, [f"canary  cannot be read ({exc.reason})"]
    canary_key = _rollout.canary_key(target.key)
    value = now.value(canary_key)
    if value is None:
        return None, []
    try:
        canary = _rollout.Canary.decode(value)
    except ValueError as exc:
        return None, [f"canary  {canary_key} is not a canary hotcfg can read ({exc})"]
    revision = now.mod_revision(canary_key)
    moved = now.mod_revision(target.key)
    if moved != canary.base_revision:
        # promote refuses this too: say it here first.
        note = [
            f"{target.key} moved since the canary was pushed: it is at revision "
            f"{moved}, the canary was pushed on {canary.base_revision}"
        ]
    else:
        note = []
    selected, not_ready = canary_not_ready(
        records, canary.selector.selects, revision, named=canary.selector.hosts
    )
    not_ready = note + not_ready
    shown = {
        "selector": canary.selector.describe(),
        "revision": revision,
        "base_revision": canary.base_revision,
        "author": canary.author,
        "message": canary.message,
        "at": utc(canary.at),
        "selected": [f"{r['host']}:{r['pid']}" for r in selected],
        "not_ready": not_ready,
    }
    line = canary_line(
        {**shown, "hosts": [str(r["host"]) for r in selected]},
        when=local(canary.at),
    )
    lines = [line]
    if not_ready:
        lines.append("canary  not ready: " + "; ".join(not_ready))
    elif not selected:
        lines.append("canary  not ready: no live master is on the canary")
    return shown, lines
