"""entsso-upgrade: upgrade Enterprise SSO on a clustered Master Secret Server, as a pytest suite."""
__version__ = "0.1.0"
