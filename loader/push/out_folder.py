"""The folder a dry run writes its request bodies, plan.json and rejected.ndjson to."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from loader.errors import LoaderError


class OutFolder:
    """A dry run's --out folder, opened once (not a symbolic link); files are created
    relative to it, exclusively and without following links."""

    FILES = re.compile(r"^(request-\d+\.json|plan\.json|rejected\.ndjson)$")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def fresh(cls, path: Path, *, force: bool) -> OutFolder:
        """Open `path`, created if missing; refuse a link, or files unless `force`, when
        only an earlier dry run's regular files are removed."""
        if path.is_symlink():
            raise LoaderError(f"--out {path} is a symbolic link: give the folder itself.")
        path.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise LoaderError(f"--out {path}: {exc.strerror}.") from None
        folder = cls(path, fd)
        try:
            folder._clear(force=force)
        except BaseException:
            folder.close()
            raise
        return folder

    def _clear(self, *, force: bool) -> None:
        names = os.listdir(self.fd)
        if names and not force:
            raise LoaderError(
                f"--out {self.path} is not empty: give a new or empty folder, or --force to "
                "replace the files of an earlier dry run there."
            )
        ours = sorted(name for name in names if self.FILES.match(name))
        for name in ours:
            mode = os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                raise LoaderError(
                    f"--out {self.path}: {name} is not a regular file (a symbolic link, a "
                    "folder); remove it yourself or give another folder."
                )
        for name in ours:
            os.unlink(name, dir_fd=self.fd)

    def create(self, name: str) -> BinaryIO:
        """A new file `name` in the folder, open for writing bytes."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return open(os.open(name, flags, 0o644, dir_fd=self.fd), "wb")

    def close(self) -> None:
        os.close(self.fd)
