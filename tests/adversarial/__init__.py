"""Hostile servers, stores and files, all on 127.0.0.1 and bounded in time."""
