"""Redis access: one store per object kind; nothing else talks to Redis."""
