"""Control plane beside the request path: fault injection, flags, drills."""
