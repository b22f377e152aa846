"""The home folder, its settings, the SQLite database and the roster (children.csv and consent history)."""
