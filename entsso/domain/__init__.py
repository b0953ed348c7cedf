"""What the estate is made of: per noun (cluster, sso, biztalk, services, sqlagent, backup, restart,
permissions, the change record) its facts (parse_*) and operations (ensure_*). Imports only entsso.remote."""
