"""Alert delivery over WebSockets: a sans-I/O protocol and a thin ``websockets`` adapter."""
