"""Files: load, orient and save photos stripped of metadata; snapshots of dropped files; durable moves."""
