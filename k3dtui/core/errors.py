"""Errors k3dtui reports to a person: one line saying what failed, one saying what to do."""

from __future__ import annotations

# Exit codes every command uses (README, "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed (one line says why)
EXIT_USAGE = 2  # bad input, refused before anything changed
EXIT_LOAD_ERRORS = 3  # `load`: more than --max-error-share of its requests failed
EXIT_TARGET_GONE = 4  # `load`: the target stopped answering (no response in the run's last second)
EXIT_NO_RECONNECT = 5  # `watch`: the connection did not come back within --reconnect-within
EXIT_STOPPED = 6  # `status`: the cluster exists but is stopped (a simulated one's state kept)
EXIT_INTERRUPTED = 130  # Ctrl+C


class K3dtuiError(Exception):
    """A failure to report without a traceback. ``exit_code`` 1 = operation failed."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def file_error(exc: OSError, what: str = "") -> K3dtuiError:
    """An ``OSError`` from k3dtui's own files (state folder, cache, logs) as one line naming
    the path and the fix: read-only, permission denied, disk full, ..."""
    import errno

    path = exc.filename or ""
    where = f" {path}" if path else ""
    doing = f"{what}: " if what else ""
    folder_fix = "set K3DTUI_STATE_DIR (and K3DTUI_CACHE_DIR) to a writable folder"
    if exc.errno == errno.EROFS:
        return K3dtuiError(f"{doing}cannot write{where}: the file system is read-only",
                           f"remount it read-write, or {folder_fix}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return K3dtuiError(f"{doing}cannot write{where}: permission denied",
                           f"make it writable by this user (chmod/chown), or {folder_fix}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return K3dtuiError(f"{doing}cannot write{where}: no space left on the device",
                           f"free some space on the disk holding{where or ' it'}, or {folder_fix}")
    if exc.errno == errno.ENOTDIR:
        return K3dtuiError(f"{doing}{path or 'a path'} is not a folder", f"move that file away, or {folder_fix}")
    reason = exc.strerror or str(exc)
    return K3dtuiError(f"{doing}{reason}{':' + where if where else ''}",
                       f"check{where or ' the path'}, or {folder_fix}")


class UsageError(K3dtuiError):
    """Bad input, refused before anything is changed. Exit code 2."""

    exit_code = 2
