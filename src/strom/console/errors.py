"""The console's failures: what the user typed is wrong (FormError), or the cluster (ClusterError) or the
schema registry (RegistryError) said no.

Both carry a message meant for the page as it is; the web layer shows it above the form and changes nothing.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Root of the console's errors; its message is shown to the user as is."""


class FormError(ConsoleError):
    """Form input the console refuses before asking the cluster (a negative offset, a bad topic name)."""


class ClusterError(ConsoleError):
    """The cluster refused a request or could not be reached; the message says which and why."""


class RegistryError(ConsoleError):
    """The schema registry refused a request or could not be reached; `status` is the page's HTTP status."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status
