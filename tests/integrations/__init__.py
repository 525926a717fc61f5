"""Framework integrations, each exercised with the framework's own test
client in the test's process (the ``fresh_hotcfg`` fixture gives each test
a hotcfg of its own)."""
