"""The marketers' tool for nurturing: sequences with their steps and statistics,
manual and bulk enrollment, enrollments, messages and suppressed addresses.

Django's admin autodiscovery imports this package; importing the modules registers
their model admins.
"""

from . import enrollments, messages, sequences, suppressions

__all__ = ["enrollments", "messages", "sequences", "suppressions"]
