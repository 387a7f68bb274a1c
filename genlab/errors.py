"""The one exception type that reaches users as a single clear line."""


class GenlabError(Exception):
    """A problem the user can fix: bad param, missing/corrupt file, failed download, divergence.

    The message says what is wrong and what to do, on one line. Stages print it
    (without a traceback) and exit with status 1.
    """
