"""Command-line interface: thin commands (parse, call, render). Composition root lives in `context`."""
