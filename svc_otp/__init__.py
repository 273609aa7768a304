"""The toko otp service."""
