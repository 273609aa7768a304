"""Compiled stand-ins for marshmallow's load and dump and Flask's JSON encoder (README.md here)."""
