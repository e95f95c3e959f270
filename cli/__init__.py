"""The `digits` command line: the top layer, which imports everything below it."""
