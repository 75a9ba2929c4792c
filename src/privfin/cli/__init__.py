"""Command-line interface (top layer). Sub-command modules import heavy dependencies lazily."""
