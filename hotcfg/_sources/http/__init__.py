"""A document at an http(s) URL, polled with validators."""
