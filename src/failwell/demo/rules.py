"""Rule tiers: plain functions of the input, no ML and no files.

``popular`` reads a popularity table computed once, at import, from the deterministic generator
(the same seed the demo trains with): the gateway imports rules when it loads its config, so no
request pays for building the table on the event loop. ``canned_reply`` answers a chat with a
fixed template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failwell.demo.data import DEFAULT_SEED, PopularityTable, generate, popularity_table

TOP_K = 10
_SNIPPET = 80


_TABLE: PopularityTable = popularity_table(generate(DEFAULT_SEED))


def popular(inputs: Mapping[str, Any]) -> dict[str, list[int]]:
    """The 10 most clicked items in the user's country and category; falls back to the
    category (unknown country), the country (unknown category), then every item."""
    country, category = inputs.get("country"), inputs.get("category")
    return {"items": _TABLE.top(str(country), str(category), TOP_K)}


def _last_user_message(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
                parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
                return " ".join(p for p in parts if isinstance(p, str))
    return ""


def canned_reply(inputs: Mapping[str, Any]) -> dict[str, str]:
    """A fixed, helpful reply that says it is a degraded answer."""
    question = " ".join(_last_user_message(inputs.get("messages")).split())
    if len(question) > _SNIPPET:
        question = question[: _SNIPPET - 1].rstrip() + "…"
    about = f' about "{question}"' if question else ""
    return {
        "content": (
            f"Sorry, I can't give you a full answer{about} right now: the assistant is running "
            "in degraded mode and this is an automatic reply. Please try again in a few "
            "minutes; in the meantime, the most popular picks in your category are a good "
            "place to start."
        )
    }
