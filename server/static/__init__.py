"""The agent console: one static page, served by ``cxstream serve``."""
