"""The command-line tools beside the suite: the admin box's doctor and the estate's discovery."""
