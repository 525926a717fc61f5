import inspect

import pytest
from gunicorn.config import Config

from hotcfg.integrations import gunicorn as hooks


def test_install_chains_existing_hooks_with_exact_arity():
    calls = []
    namespace = {
        "post_worker_init": lambda worker: calls.append(("theirs", worker)),
        "post_request": lambda worker, req: calls.append(("post", req)),
    }
    hooks.install(namespace)
    cfg = Config()
    for name in hooks.HOOKS:
        cfg.set(name, namespace[name])  # gunicorn's own arity validation
    assert len(inspect.signature(namespace["pre_request"]).parameters) == 2
    hooks.install(namespace)  # idempotent
    assert getattr(namespace["post_worker_init"], "_hotcfg_hook", False)


def test_install_rejects_wrong_arity():
    with pytest.raises(TypeError, match="positional"):
        hooks.install({"on_starting": lambda: None})
