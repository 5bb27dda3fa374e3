"""Private files: the instance folder 0700, and 0600 for what is in it and for the SQLite files.

Modes are set explicitly at every start, never left to the umask, so a folder or files made
by an earlier version (0755, 0644) are made private too: another account on the machine reads
nothing, not even a pending code in the database.
"""

import contextlib
import os
import stat

from sqlalchemy.engine import make_url

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def make_private(path: str, mode: int = FILE_MODE) -> None:
    """Give ``path`` exactly ``mode`` if it is ours and has another (a no-op when it is gone)."""
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(current.st_mode) or current.st_uid != os.getuid():
        return  # a link's target, or another account's file, is not ours to change
    if stat.S_IMODE(current.st_mode) != mode:
        os.chmod(path, mode)


def secure_instance_folder(folder: str) -> None:
    """Create the folder 0700 (or make it so), then make every regular file in it 0600."""
    os.makedirs(folder, mode=FOLDER_MODE, exist_ok=True)
    make_private(folder, FOLDER_MODE)  # first: nothing in it is reachable while we go on
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                make_private(entry.path)


def sqlite_path(database_url: str) -> str | None:
    """The file of a SQLite database URL; None for another backend or an in-memory database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in {None, "", ":memory:"}:
        return None
    return os.path.abspath(url.database)


def secure_sqlite_files(database_url: str) -> None:
    """Create the SQLite file 0600 before SQLite does (it would follow the umask), and make it
    and its companions 0600; SQLite gives the ``-wal`` and ``-shm`` files it creates later the
    mode of the database file."""
    path = sqlite_path(database_url)
    if path is None or not os.path.isdir(os.path.dirname(path)):
        return  # a missing folder: the first query says so, in one line
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    for suffix in SQLITE_COMPANIONS:
        make_private(path + suffix)


def secure_files(instance_path: str, database_url: str) -> None:
    """Make the instance folder and the SQLite database private."""
    secure_instance_folder(instance_path)
    secure_sqlite_files(database_url)
