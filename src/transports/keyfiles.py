"""Reading a file a setting names (a certificate, a key), with a one-line reason when it cannot be read."""

from __future__ import annotations

from pathlib import Path


def read_key_file(path: Path, error: type[Exception], what: str) -> bytes:
    """The bytes of ``path``; else ``error`` saying why in a line a person reads (``what``: "a key file", ...)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"no such file: {path}") from None
    except PermissionError:
        raise error(f"no permission to read {path}") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not {what}") from None
    except OSError as failure:
        raise error(f"cannot read {path}: {failure.strerror}") from None
