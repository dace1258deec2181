"""A hookgate plugin in Python: forwards every event unchanged.

``handle(event, config)`` runs once per delivery attempt. ``event`` is the
generated ``Event`` (``id``, ``event_type``, ``webhook_id``, ``headers``,
``body`` as bytes); ``config`` is the webhook's plugin config as a
``dict[str, str]``. Return a ``Verdict``: ``forward(event)`` (unchanged),
``forward(event, body, headers)``, ``forward_json(event, value)`` or
``drop(reason)``. Raise an exception to fail the attempt with its message.
"""

from hookgate import Config, Event, Verdict, check_keys, forward


def handle(event: Event, config: Config) -> Verdict:
    return forward(event)


def validate_config(config: Config) -> None:
    """Called when the gateway loads the plugin for a webhook: raise to
    reject the config with a message saying why."""
    # This plugin takes no configuration; reject typos early.
    check_keys(config, [])
