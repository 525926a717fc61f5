"""Framework glue. Importing this package imports no framework."""
