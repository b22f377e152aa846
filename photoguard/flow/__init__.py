"""A photo's way through PhotoGuard: the processor, the outbox, review, reprocess, the watcher and upkeep."""
