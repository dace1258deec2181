"""A hostile Python plugin for the gateway's tests (built by the test kit
with plugins/template-py's runtime). Config ``mode`` picks the misbehaviour:

* ``loop``: spins forever
* ``memory``: allocates until refused
* ``raise``: raises an exception
* ``counter``: forwards, counting its calls in a global (header ``x-calls``)
* ``probe``: tries files, directories, environment, arguments and sockets,
  and forwards a JSON report of what each attempt gave
* (none): forwards unchanged

Config ``validate = "loop"`` makes validate_config spin forever.
"""

import json
import os
import sys

from hookgate import Config, Event, Verdict, forward, forward_json, with_header

_calls = 0


def validate_config(config: Config) -> None:
    if config.get("validate") == "loop":
        while True:
            pass


def handle(event: Event, config: Config) -> Verdict:
    global _calls
    mode = config.get("mode")
    if mode == "loop":
        while True:
            pass
    if mode == "memory":
        hog = []
        while True:
            hog.append(bytearray(1 << 20))
    if mode == "raise":
        raise RuntimeError(f"hostile plugin raised on purpose for {event.event_type}")
    if mode == "counter":
        _calls += 1
        return forward(event, headers=with_header(event.headers, "x-calls", str(_calls)))
    if mode == "probe":
        return forward_json(event, probe(config.get("port", "1")))
    return forward(event)


def attempt(action) -> str:
    try:
        result = action()
    except BaseException as e:  # noqa: BLE001 - the report is the point
        return f"denied: {type(e).__name__}"
    return f"allowed: {result!r}"[:200]


def probe(port: str) -> dict:
    def connect():
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(("127.0.0.1", int(port)))
        return "connected"

    def resolve():
        import socket

        return socket.getaddrinfo("localhost", 80)

    return {
        "read_file": attempt(lambda: open("/etc/passwd").read(10)),
        "write_file": attempt(lambda: open("/tmp/hookgate-probe", "w").write("x")),
        "list_root": attempt(lambda: os.listdir("/")),
        "list_cwd": attempt(lambda: os.listdir(".")),
        "environ": "empty" if not os.environ else f"allowed: {sorted(os.environ)[:5]}",
        "argv": "empty" if len(sys.argv) <= 1 and not any(sys.argv) else f"allowed: {sys.argv}",
        "connect": attempt(connect),
        "resolve": attempt(resolve),
    }
