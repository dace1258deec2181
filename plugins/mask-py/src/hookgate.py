"""Helpers for hookgate plugins in Python.

The types come from the bindings that `componentize-py` generates from
wit/plugin.wit (``./build.sh`` writes them to ``bindings/``):

* ``Event``: ``id``, ``event_type``, ``webhook_id``, ``headers`` (a list of
  ``(name, value)`` pairs, in order) and ``body`` (``bytes``).
* ``Verdict``: ``Verdict_Forward(ForwardRequest(body, headers))`` or
  ``Verdict_Drop(reason)``; the functions below build them.

You do not need to edit this file; write your plugin in ``src/plugin.py``.
"""

import json
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from wit_world.imports import host
from wit_world.imports.types import (
    Event,
    ForwardRequest,
    Verdict,
    Verdict_Drop,
    Verdict_Forward,
)

__all__ = [
    "Event",
    "Verdict",
    "Headers",
    "Config",
    "forward",
    "forward_json",
    "drop",
    "body_json",
    "header",
    "with_header",
    "check_keys",
    "log",
]

Headers = List[Tuple[str, str]]
"""An ordered header list; names are case-insensitive."""

Config = Dict[str, str]
"""The plugin's config: the webhook's ``config`` table, as strings."""


def header(event: Event, name: str) -> Optional[str]:
    """The first header with this name (case-insensitive), or ``None``."""
    wanted = name.lower()
    for n, v in event.headers:
        if n.lower() == wanted:
            return v
    return None


def with_header(headers: Headers, name: str, value: Optional[str]) -> Headers:
    """A copy of ``headers`` with ``name`` set to ``value`` (replacing any
    header with that name), or removed when ``value`` is ``None``."""
    lower = name.lower()
    kept = [(n, v) for n, v in headers if n.lower() != lower]
    if value is not None:
        kept.append((name, value))
    return kept


def body_json(event: Event) -> Any:
    """The event body parsed as JSON (raises ``ValueError`` if it is not)."""
    try:
        return json.loads(event.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"the event body is not JSON: {e}") from None


def forward(
    event: Event,
    body: Union[bytes, str, None] = None,
    headers: Optional[Headers] = None,
) -> Verdict:
    """Deliver ``body`` (default: the event's own) with ``headers``
    (default: the incoming headers)."""
    if body is None:
        data = event.body
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = bytes(body)
    return Verdict_Forward(ForwardRequest(data, list(event.headers if headers is None else headers)))


def forward_json(event: Event, value: Any, headers: Optional[Headers] = None) -> Verdict:
    """Deliver ``value`` serialised as JSON, with ``content-type:
    application/json`` and otherwise ``headers`` (default: the incoming
    ones)."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    base = list(event.headers if headers is None else headers)
    return Verdict_Forward(ForwardRequest(body, with_header(base, "content-type", "application/json")))


def drop(reason: str) -> Verdict:
    """Do not deliver: the delivery becomes ``filtered`` with this reason."""
    return Verdict_Drop(str(reason))


def check_keys(config: Config, known: Iterable[str]) -> None:
    """Raises ``ValueError`` naming the first key not in ``known`` (catches
    typos in ``validate_config``)."""
    known = list(known)
    for key in config:
        if key not in known:
            if known:
                raise ValueError(f"unknown config key {key!r} (known: {', '.join(known)})")
            raise ValueError(f"unknown config key {key!r} (this plugin takes none)")


class _Log:
    """Writes lines to the gateway log (rate-limited and truncated by the
    host). ``print`` also works: stdout is logged at debug level."""

    @staticmethod
    def trace(message: str) -> None:
        host.log(host.Level.TRACE, str(message))

    @staticmethod
    def debug(message: str) -> None:
        host.log(host.Level.DEBUG, str(message))

    @staticmethod
    def info(message: str) -> None:
        host.log(host.Level.INFO, str(message))

    @staticmethod
    def warn(message: str) -> None:
        host.log(host.Level.WARN, str(message))

    @staticmethod
    def error(message: str) -> None:
        host.log(host.Level.ERROR, str(message))


log = _Log()
