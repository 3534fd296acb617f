"""Backup of the exchange DB: a continuous journal of committed batches with periodic snapshots
(``continuous``), the file formats (``journal``, ``snapshot``), and one-off backups and restores (``restore``).
docs/backup.md describes how it works and what to do when it fails."""
