"""The publisher's side: runs in the master (or the publishing process) only."""
