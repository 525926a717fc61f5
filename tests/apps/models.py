"""Typed models for the tests (HOTCFG_MODEL=tests.apps.models:Probe)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import pydantic


@dataclass(frozen=True)
class Pool:
    size: int
    timeout: float = 5.0


@dataclass(frozen=True)
class Db:
    url: str
    pool: Pool
    mode: Literal["ro", "rw"] = "rw"
    replicas: tuple[str, ...] = ()


@dataclass(frozen=True)
class App:
    db: Db
    debug: bool = False
    limits: dict[str, int] = field(default_factory=dict)
    owner: str | None = None
    ports: list[int] = field(default_factory=list)
    pair: tuple[int, str] | None = None
    either: int | str = 0


@dataclass(frozen=True)
class Probe:
    """What the e2e probe config must look like: ``value`` a string."""

    value: str
    pool: int = 1
    delay_ms: int = 0


class PydPool(pydantic.BaseModel):
    size: int = pydantic.Field(gt=0)


class PydApp(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    name: str
    pool: PydPool
    tags: list[str] = []


@dataclass(frozen=True)
class Exiting:
    """A model whose own check calls ``sys.exit()`` for ``value: exit``."""

    value: str

    def __post_init__(self) -> None:
        if self.value == "exit":
            sys.exit(4)
