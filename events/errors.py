"""The one base of every error jiahe raises on purpose.

A ``JiaheError`` is an error jiahe expects and can explain to its user (a bad rule
pack, an org-unit code that does not exist, a key that was shredded, a broker that
is away). Faces catch it once: the CLI prints its message as a usage error, the
API answers with it. Adapters translate the foreign errors of their libraries
(sqlite3, kafka, chdb, cryptography) into subclasses, so nothing above them needs
to know which library failed. Anything that is not a ``JiaheError`` is a bug.
"""

from __future__ import annotations


class JiaheError(Exception):
    """An expected failure, with a message meant for the person who caused it."""
