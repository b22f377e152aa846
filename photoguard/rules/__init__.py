"""The pure rules: consent per channel and what each face gets. No files, no database."""
