"""The one error type for unusable input: the CLI prints its message and exits 2."""


class AltlinkError(Exception):
    """Unusable input or usage. The message is one line and names the file and the place."""

    exit_code = 2


class LinkerError(AltlinkError):
    """The external linker failed; its own messages were passed through."""

    exit_code = 3
