"""The read side: the snapshot of an estate (snapshot) and every check judged on it (checks)."""
