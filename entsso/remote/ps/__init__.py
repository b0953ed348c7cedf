"""PowerShell scripts, one per remote operation (docs/operations.md). Package data."""
