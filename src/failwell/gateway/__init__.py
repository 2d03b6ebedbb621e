"""The composition root: one function builds the whole gateway (``build``), the same code
rebuilds it on a config reload, and what it returns is also the in-process Python API
(``open``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from failwell.config.load import load_config
from failwell.gateway.core import Gateway, build


@contextlib.asynccontextmanager
async def open(path: str | Path) -> AsyncIterator[Gateway]:
    """A started gateway for the config file at ``path``, in this process and without an HTTP
    server; closed on exit::

        async with failwell.open("failwell.yaml") as gw:
            answer = await gw.predict("recommend", {"user_id": "u1", ...})
    """
    path = Path(path)
    async with build(load_config(path), path) as gateway:
        yield gateway


__all__ = ["Gateway", "build", "open"]
