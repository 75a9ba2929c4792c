"""Migration scripts: revision "0001_base" and the branches off it (see ../README.md)."""
