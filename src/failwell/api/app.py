"""The HTTP edge as one ASGI application: the edge's steps (``api/layers.py`` says what each
does) around the front-end router, and the lifespan that starts and stops the gateway."""

from __future__ import annotations

import gc

from failwell.api.host import Host
from failwell.api.http import Receive, Scope, Send
from failwell.api.layers import Edge
from failwell.api.router import FrontEnds
from failwell.observe.logging import log


class App(Edge):
    def __init__(self, gateway: Host) -> None:
        self.gateway = gateway
        super().__init__(
            FrontEnds(gateway),
            gateway.guard,
            gateway.observers,
            gateway.before_respond,
            gateway.before_admin_respond,
            gateway.audit,
        )

    async def other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as exc:  # report start-up failure to the server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                gc.collect()
                gc.freeze()  # start-up objects never need scanning again: fewer GC pauses
                log.info("gateway_started", routes=list(self.gateway.routes))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
