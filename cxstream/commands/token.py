"""``cxstream token``: print a signed token on stdout and nothing else."""

from __future__ import annotations

import argparse
import sys
import time

from cxstream.commands.args import nonempty_name, ttl_hours
from cxstream.settings import Settings
from server.tokens import ROLES


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a signed token on stdout and nothing else."""
    from server.tokens import mint

    ttl_s = (args.ttl_hours or settings.token_ttl_hours) * 3600
    token = mint(
        settings.signing_secret(),
        agent_id=args.agent,
        queues=args.queue or [],
        role=args.role,
        now=time.time(),
        ttl_s=ttl_s,
    )
    sys.stdout.write(token + "\n")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser("token", help="print a signed token", description=cmd_token.__doc__)
    p.add_argument(
        "--agent", required=True, type=nonempty_name, help="agent (or system) id the token is for"
    )
    p.add_argument(
        "--queue",
        action="append",
        type=nonempty_name,
        help="queue the holder may receive alerts for; repeatable",
    )
    p.add_argument(
        "--role",
        choices=ROLES,
        default="agent",
        help="agent, supervisor (on /ws); ingest (events on /ingest); privacy (forget events "
        "on /ingest)",
    )
    p.add_argument(
        "--ttl-hours", type=ttl_hours, default=None, help="lifetime (CX_TOKEN_TTL_HOURS)"
    )
    p.set_defaults(func=cmd_token, follows_demo=True)  # while the demo runs: its folder
