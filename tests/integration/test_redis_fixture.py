"""The shared Redis test fixture starts a real redis-server and the redis client reaches it."""

import redis

from tests.integration.conftest import Stack


def test_real_redis_server(stack: Stack) -> None:
    server = stack.redis()
    client = redis.Redis.from_url(server.url)
    try:
        client.set("failwell:probe", "1")
        assert client.get("failwell:probe") == b"1"
    finally:
        client.close()
