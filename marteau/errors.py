"""The one error type for bad input, shared by every layer."""


class MarteauError(Exception):
    """Bad input or an unusable environment.

    The message names the file, section, key, line or URL at fault; the
    command line prints it without a traceback and exits with status 2.
    """
