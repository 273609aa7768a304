"""The toko transaction service."""
