"""Shared by every test directory: pytest puts this file's directory (tests/) on sys.path, so helper
modules here (paced_server.py) import by name from any test module."""
