"""Stand-in for Kaapana's plugin package (tests only; see ../README.md)."""
