"""Django integration: an installable app, a middleware, a system check and
the ``hotcfg_validate`` command.

::

    INSTALLED_APPS = [..., "hotcfg.integrations.django"]
    MIDDLEWARE = [..., "hotcfg.integrations.django.middleware.HotcfgMiddleware"]
    # (also importable as hotcfg.integrations.django.HotcfgMiddleware)
    HOTCFG = {"SOURCE": BASE_DIR / "config.yaml"}   # any HOTCFG_* setting, unprefixed

In a view, ``request.hotcfg`` is the request's snapshot; ``hotcfg.get()``
agrees with it for the whole request.
"""

from .middleware import HotcfgMiddleware as HotcfgMiddleware

__all__ = ["HotcfgMiddleware"]
