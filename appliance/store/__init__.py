"""SQLite storage through sqlite-utils: migrations, directory, call records."""
