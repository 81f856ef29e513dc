"""The one error type for unusable input: the CLI prints its message and exits 2."""


class AltlinkError(Exception):
    """Unusable input or usage. The message is one line and names the file and the place."""

    exit_code = 2


class LinkerError(AltlinkError):
    """The external linker failed; its own messages were passed through."""

    exit_code = 3


def one_line(text: str) -> str:
    """``text`` as one printable line: a name read from a file may hold a newline, a form feed
    or another character that ends a line; each is shown escaped (``\\x0c``) instead."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
