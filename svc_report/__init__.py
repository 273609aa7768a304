"""The toko report service."""
