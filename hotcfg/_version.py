"""The package's version, in a module of its own.

hotcfg's own modules that need it (the HTTP source's ``User-Agent``) import
it from here, never from the package, whose public names come from modules
that import those (that would be a circle). Imports nothing.
"""

__version__ = "0.1.0"
