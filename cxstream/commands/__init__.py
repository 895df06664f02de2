"""One module a command: its arguments (``add_parser``) and what it does (``cmd_*``)."""
