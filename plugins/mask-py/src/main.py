"""The component's entry point: wires ``plugin.handle`` and
``plugin.validate_config`` to the exports of the hookgate:plugin@0.1.0
world. An exception becomes the plugin's error (the delivery attempt fails
with its message). You do not need to edit this file."""

from typing import List, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import Event, Verdict, Verdict_Drop, Verdict_Forward

import plugin


def _config(pairs: List[Tuple[str, str]]) -> dict:
    config: dict = {}
    for key, value in pairs:
        config.setdefault(key, value)
    return config


def _message(e: BaseException) -> str:
    text = str(e)
    if not text:
        return type(e).__name__
    if type(e) in (Exception, ValueError, RuntimeError):
        return text
    return f"{type(e).__name__}: {text}"


class WitWorld(wit_world.WitWorld):
    def handle(self, event: Event, config: List[Tuple[str, str]]) -> Verdict:
        try:
            verdict = plugin.handle(event, _config(config))
        except Err:
            raise
        except Exception as e:
            raise Err(_message(e))
        if not isinstance(verdict, (Verdict_Forward, Verdict_Drop)):
            raise Err(
                "handle must return a Verdict (forward(...), forward_json(...) or drop(...)), "
                f"not {type(verdict).__name__}"
            )
        return verdict

    def validate_config(self, config: List[Tuple[str, str]]) -> None:
        check = getattr(plugin, "validate_config", None)
        if check is None:
            return None
        try:
            check(_config(config))
        except Err:
            raise
        except Exception as e:
            raise Err(_message(e))
        return None
