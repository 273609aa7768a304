"""The toko item service."""
