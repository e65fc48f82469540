"""The console's failures: what the user typed is wrong (FormError), or the cluster said no (ClusterError).

Both carry a message meant for the page as it is; the web layer shows it above the form and changes nothing.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Root of the console's errors; its message is shown to the user as is."""


class FormError(ConsoleError):
    """Form input the console refuses before asking the cluster (a negative offset, a bad topic name)."""


class ClusterError(ConsoleError):
    """The cluster refused a request or could not be reached; the message says which and why."""
