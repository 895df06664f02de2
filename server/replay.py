"""Resume: the alerts a reconnecting agent missed, before the live ones.

While the pages go out the session holds the live alerts; after the last page
(or an outage) :meth:`AgentSession.replayed` releases them, after what was
replayed.  With ``CX_ALERT_GROUPS`` the pages are those of the streams of the
token's queues, merged in id order: one id sequence runs over every group, so a
resume point given by one server holds on another.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from server.connections import Connection, streams_needed
from server.protocol import Action, AgentSession, Ingest, Send
from server.pump import AlertFeed

log = logging.getLogger(__name__)

READING_WAIT_S = 5.0  # how long a resume waits for the server to read its streams


async def replay(
    client: Connection,
    feed: AlertFeed,
    after: str,
    act: Callable[[Connection, Sequence[Action | Ingest]], Awaitable[None]],
) -> None:
    """The alerts after ``after`` that ``client`` wants, then the live ones it held
    (through ``act``)."""
    session = client.session
    assert isinstance(session, AgentSession)
    streams = None  # every alert stream
    if feed.groups.split and session.claims is not None:  # those of the token's queues
        streams = streams_needed(feed.groups, session.claims)
        # The live alerts start once the server reads them all: read back from after
        # that, or what came between the replay's end and their start would be missed.
        if not await feed.until_reading(streams, READING_WAIT_S):
            log.warning(
                "resuming though this server does not read %s yet (redis away?): what comes "
                "between the replay and the live alerts may need another resume",
                sorted(streams),
            )
    try:
        async with contextlib.aclosing(feed.after(after, streams)) as pages:
            async for page in pages:
                expired = session.check_deadline(time.time())  # (the token may expire)
                if expired:
                    await act(client, expired)
                if session.closed:
                    break
                for entry_id, alert in page:
                    for action in session.alert(entry_id, alert, replay=True):
                        if not isinstance(action, Send):
                            continue
                        # a resuming client waits for queue space, it is not dropped; one
                        # that went away ends the replay (its connection is cleaned up)
                        if not await client.put(action.frame):
                            session.closed = True
                            return
                        client.metrics.delivered.inc()
    finally:
        # on an outage too: the live alerts held go out, after what was replayed, and
        # wait for queue space as the replay did (the replay may have left it full)
        for action in session.replayed():
            if session.closed:
                break
            if not isinstance(action, Send):
                await act(client, [action])
            elif not await client.put(action.frame):
                session.closed = True
