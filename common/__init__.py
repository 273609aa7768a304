"""Pieces every toko service shares: settings, the model library, the web factory, the CLI."""
