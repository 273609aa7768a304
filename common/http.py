"""What the contract fixes about HTTP itself, shared by the services and the edge (no web framework)."""

# The methods toko answers; any other is a 405 at every layer, and one metrics label for them all.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
