"""failwell: an inference gateway that keeps AI services answering when models fail.

The Python API::

    import failwell

    async with failwell.open("failwell.yaml") as gw:
        answer = await gw.predict("recommend", {"user_id": "u1", "country": "DE", "category": "books"})
        answer.outputs, answer.tier, answer.quality

``failwell.build(config)`` makes a gateway from a loaded config; ``failwell.load_config``
reads and validates a file. The gateway's parts load on first use of these names, so
``import failwell.errors`` (or a model server importing a demo model) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failwell.version import __version__ as __version__

__all__ = [
    "AllTiersFailed",
    "Answer",
    "ConfigError",
    "FailwellError",
    "Gateway",
    "build",
    "load_config",
    "open",
]

if TYPE_CHECKING:
    from failwell.config.load import load_config
    from failwell.contracts import Answer
    from failwell.errors import AllTiersFailed, ConfigError, FailwellError
    from failwell.gateway import Gateway, build, open

_HOMES = {
    "Gateway": "failwell.gateway",
    "build": "failwell.gateway",
    "open": "failwell.gateway",
    "load_config": "failwell.config.load",
    "Answer": "failwell.contracts",
    "AllTiersFailed": "failwell.errors",
    "ConfigError": "failwell.errors",
    "FailwellError": "failwell.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'failwell' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)
