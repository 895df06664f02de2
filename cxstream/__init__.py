"""cxstream: a real-time customer-experience engine.

This package is the composition root: settings, the exception root and the
command line.  The logic lives in ``operators`` (pure), ``state`` (Redis and
disk), ``flows`` (Bytewax wiring) and ``server`` (WebSocket delivery).
"""

__version__ = "0.9.12"
