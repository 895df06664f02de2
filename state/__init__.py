"""Everything that talks to Redis or disk: connections, sources, sinks, stores."""
