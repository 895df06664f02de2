"""The one exception root of cxstream.

::

    CxError
    ├── ConfigError       a setting or command-line value is wrong
    ├── InvalidEvent      an event breaks the event contract (goes to the dead-letter stream)
    ├── AuthError         a token is missing, malformed, expired or signed with another key
    ├── ProtocolError     a WebSocket client sent a message the protocol does not allow
    └── StoreError        Redis (or the embedded server) failed or answered unexpectedly

Messages are lower-case and name what was received, e.g.
``event 17 from cx:events:3: ts missing``.
"""


class CxError(Exception):
    """Root of every error cxstream raises on purpose."""


class ConfigError(CxError):
    """A setting, environment variable or command-line value is wrong."""


class InvalidEvent(CxError):
    """An event breaks the event contract.

    ``reason`` is the short machine-readable cause kept in the dead-letter stream.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class AuthError(CxError):
    """A token is missing, malformed, expired or not signed with our key."""


class ProtocolError(CxError):
    """A WebSocket client broke the protocol."""


class StoreError(CxError):
    """Redis or the embedded Redis server failed."""
