"""The one exception type sbf-link reports to its user."""


class LinkError(Exception):
    """A failure explained by its message alone; the CLI prints it without a traceback."""
