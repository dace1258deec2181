"""mask-py: masks values that look like payment card numbers or email
addresses anywhere in a JSON event, before it leaves for the receiver.

* Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes,
  that pass the Luhn check (so order ids and phone numbers are left alone).
  All digits but the last ``keep_last`` become ``*``; the grouping is kept.
* Email addresses: the local part becomes ``***`` except its first
  character, the domain is kept (``ann@example.com`` -> ``a***@example.com``).

Config (all optional):

* ``cards``: ``true`` (default) or ``false``
* ``emails``: ``true`` (default) or ``false``
* ``keep_last``: card digits left visible, 0 to 6 (default 4)
* ``skip_fields``: comma-separated object keys whose values are left as
  they are (e.g. ``support_email``)

The body is re-serialised as compact JSON; the header ``x-masked`` says how
many values were changed. A body that is not JSON fails the attempt.
"""

import re
from typing import Any, List, Set

from hookgate import Config, Event, Verdict, body_json, forward_json, with_header

KEYS = ["cards", "emails", "keep_last", "skip_fields"]

# Candidate card numbers: 13-19 digits, single spaces or dashes between them.
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def validate_config(config: Config) -> None:
    for key in config:
        if key not in KEYS:
            raise ValueError(f"unknown config key {key!r} (known: {', '.join(KEYS)})")
    for key in ("cards", "emails"):
        if key in config and config[key] not in ("true", "false"):
            raise ValueError(f"{key} must be true or false, not {config[key]!r}")
    keep = config.get("keep_last", "4")
    if not keep.isdigit() or int(keep) > 6:
        raise ValueError(f"keep_last must be a whole number from 0 to 6, not {keep!r}")


def handle(event: Event, config: Config) -> Verdict:
    masker = Masker(
        cards=config.get("cards", "true") == "true",
        emails=config.get("emails", "true") == "true",
        keep_last=int(config.get("keep_last", "4")),
        skip={f.strip() for f in config.get("skip_fields", "").split(",") if f.strip()},
    )
    masked = masker.walk(body_json(event))
    return forward_json(event, masked, with_header(event.headers, "x-masked", str(masker.count)))


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Masker:
    def __init__(self, cards: bool, emails: bool, keep_last: int, skip: Set[str]) -> None:
        self.cards = cards
        self.emails = emails
        self.keep_last = keep_last
        self.skip = skip
        self.count = 0

    def walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if isinstance(value, dict):
            return {k: (v if k in self.skip else self.walk(v)) for k, v in value.items()}
        return value

    def mask(self, text: str) -> str:
        if self.cards:
            text = CARD.sub(self._card, text)
        if self.emails:
            text = EMAIL.sub(self._email, text)
        return text

    def _card(self, m: "re.Match[str]") -> str:
        found = m.group(0)
        digits = "".join(c for c in found if c.isdigit())
        if not luhn_ok(digits):
            return found
        self.count += 1
        hide = len(digits) - self.keep_last
        out: List[str] = []
        seen = 0
        for c in found:
            if c.isdigit():
                out.append("*" if seen < hide else c)
                seen += 1
            else:
                out.append(c)
        return "".join(out)

    def _email(self, m: "re.Match[str]") -> str:
        self.count += 1
        return f"{m.group(1)}***@{m.group(2)}"
