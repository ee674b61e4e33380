"""Output files as users expect them: written whole or not at all, with the usual permissions.

Every file lic writes for a user (``.lic`` files, decoded images, weights) goes through a temporary file
in the output's folder and is renamed over the output at the end, so that an error, a full disk or a
Ctrl-C never leaves a half-written file.  Temporary files are created private (``mkstemp`` makes them
0600, and the safetensors writer does the same), so each output is given the permissions any other
tool's output would have: those of the file it replaces, else ``0o666`` less the process's umask.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import OutputError


def new_file_mode(out: Path) -> int:
    """The permission bits for ``out``: kept from the file it replaces, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(out.stat().st_mode)
    except OSError:
        umask = os.umask(0)  # the only way to read it; set back at once
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(out: Path, data: bytes | None = None, save=None) -> None:
    """Write ``data`` (or call ``save(tmp_path)``) to a temporary file, then rename it over ``out``.

    Errors are :class:`~lic.errors.OutputError` naming ``out``; the temporary file never stays behind.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix or ".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write ({exc.strerror})") from None
    try:
        os.chmod(tmp, new_file_mode(out))
        with os.fdopen(fd, "wb") as f:
            if data is not None:
                f.write(data)
        if save is not None:
            save(tmp)
        os.replace(tmp, out)
    except (OSError, ValueError) as exc:  # ValueError: an image writer refusing what it was given
        raise OutputError(f"{out}: cannot write ({getattr(exc, 'strerror', None) or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_folders(folder: Path, what: str = "") -> list[Path]:
    """``mkdir -p`` that returns the folders it created, the outermost first (so that a run that leaves them
    empty can remove them again: :func:`remove_empty`); a folder that cannot be made is an OutputError.
    ``what`` names the option in the message (``--out``)."""
    folder = Path(folder)
    missing, p = [], folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        label = f"{what} {folder}" if what else str(folder)
        raise OutputError(f"{label}: cannot create folder ({exc.strerror or exc})") from None
    return missing[::-1]


def remove_empty(made: list[Path]) -> None:
    """Remove again the folders :func:`make_folders` created that were left empty, the deepest first."""
    for d in reversed(made):
        try:
            d.rmdir()
        except OSError:
            pass


def check_creatable_folder(folder: Path, what: str = "") -> None:
    """Refuse, before any work, an output folder that cannot be made or written: one of its parents is a file,
    or making it fails (it is made and removed again).  ``what`` names the option in the message (``--out``)."""
    folder = Path(folder)
    label = f"{what} {folder}" if what else str(folder)
    if folder.exists():
        if not folder.is_dir():
            raise OutputError(f"{label}: exists and is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{label}: cannot write into this folder (permission denied)")
        return
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise OutputError(f"{label}: cannot create folder ({p} is a file)")
    remove_empty(make_folders(folder, what))  # the work it is for comes first, and may fail
