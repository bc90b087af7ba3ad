"""Fixtures for the `subjlab data fetch` tests: a saved copy of the source fixtures, pinned to their hashes."""

from __future__ import annotations

import dataclasses
import gzip
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

SOURCE_FIXTURES = Path(__file__).resolve().parent.parent / "data" / "sources"
MEMBERS = ".members"


def _pack(members: Path, archive: Path) -> None:
    """Pack a `<archive>.members/` folder into `archive` (zip or tar.gz), byte-identical on every run."""
    files = sorted(p for p in members.rglob("*") if p.is_file())
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                info = zipfile.ZipInfo(path.relative_to(members).as_posix(), date_time=(2013, 7, 22, 18, 45, 0))
                zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
        return
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(path.relative_to(members).as_posix())
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    with open(archive, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())


def build_saved_copy(dest: Path) -> Path:
    """Write the fixtures in the --source-dir layout (`dest/<task>/<name>`, archives packed); return dest."""
    for task_dir in sorted(p for p in SOURCE_FIXTURES.iterdir() if p.is_dir()):
        out = dest / task_dir.name
        out.mkdir(parents=True)
        for item in sorted(task_dir.iterdir()):
            if item.is_dir() and item.name.endswith(MEMBERS):
                _pack(item, out / item.name[: -len(MEMBERS)])
            elif item.is_file():
                shutil.copyfile(item, out / item.name)
    return dest


@pytest.fixture(scope="session")
def saved_copy(tmp_path_factory) -> Path:
    """The source fixtures as a saved copy: `<dir>/<task>/<source file name>` (read-only use)."""
    return build_saved_copy(tmp_path_factory.mktemp("saved") / "saved")


@pytest.fixture
def pinned_to_fixtures(monkeypatch, saved_copy):
    """Pin every task's source files to the fixture files' hashes (the real pins are for the real files).

    Returns the saved copy folder. The hash checks themselves run unchanged.
    """
    from subjlab.sources.fetch import file_hashes
    from subjlab.sources.registry import SOURCES

    for task, source in list(SOURCES.items()):
        files = []
        for sf in source.files:
            sha256, blob, size = file_hashes(saved_copy / task / sf.name)
            files.append(dataclasses.replace(sf, sha256=sha256, git_blob=blob, size=size))
        monkeypatch.setitem(SOURCES, task, dataclasses.replace(source, files=tuple(files)))
    return saved_copy
