"""The toko user service."""
