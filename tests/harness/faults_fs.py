"""Filesystem faults and the files a fault must not touch: a small tmpfs filled to the last byte, a directory
bind-mounted read-only, and fingerprints of whole trees (contents, and kinds and modes) and a search for secrets.

Mounts need root (the suite runs as root); every mount is undone when its block ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess


def _unmount(target):
    """Unmount ``target``, lazily when it is busy."""
    if subprocess.run(['umount', target], check=False, capture_output=True).returncode != 0:
        subprocess.run(['umount', '-l', target], check=False, capture_output=True)


@contextlib.contextmanager
def tmpfs_mounted(target, *options):
    """A tmpfs (``options`` such as ``size=48m``) mounted on ``target`` for the block; always unmounted again."""
    os.makedirs(target, exist_ok=True)
    argv = ['mount', '-t', 'tmpfs'] + (['-o', ','.join(options)] if options else []) + ['tmpfs', target]
    subprocess.run(argv, check=True, capture_output=True)
    try:
        yield target
    finally:
        _unmount(target)


def fill_to_last_byte(directory, name='filler', chunk=1 << 20):
    """Write zeros to ``directory/name`` until the filesystem is full; the bytes written."""
    path = os.path.join(directory, name)
    written = 0
    block = b'\0' * chunk
    with open(path, 'wb', buffering=0) as handle:
        while True:
            try:
                written += handle.write(block)
            except OSError:
                break
    # What is left is less than a block: halve the writes down to one byte, to the very end.
    with open(path, 'ab', buffering=0) as handle:
        size = 4096
        while size:
            try:
                written += handle.write(b'\0' * size)
            except OSError:
                size //= 2
    return written


@contextlib.contextmanager
def bind_read_only(directory):
    """``directory`` bind-mounted onto itself read-only for the block: even root gets EROFS writing there."""
    subprocess.run(['mount', '--bind', directory, directory], check=True, capture_output=True)
    try:
        subprocess.run(['mount', '-o', 'remount,ro,bind', directory], check=True, capture_output=True)
        yield directory
    finally:
        _unmount(directory)


def flip_byte(path, offset=None):
    """Invert the byte at ``offset`` (default: the middle) of ``path`` in place, as bit rot on disk would."""
    offset = os.path.getsize(path) // 2 if offset is None else offset
    with open(path, 'r+b') as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def tear_in_half(path):
    """Cut ``path`` to half its size, as a crash during a non-atomic write leaves it."""
    with open(path, 'r+b') as handle:
        handle.truncate(os.path.getsize(path) // 2)


def file_tree(*roots):
    """``{path: (size, sha256)}`` of every regular file under ``roots``: the data a fault must not lose."""
    tree = {}
    for root in roots:
        for folder, dummy, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                tree[path] = (os.path.getsize(path), sha256_of(path))
    return tree


def lost_bytes(before, after):
    """Bytes of files in ``before`` that are gone or different in ``after`` (new files are not losses)."""
    return sum(size for path, (size, digest) in before.items() if after.get(path, (None, None))[1] != digest)


def tree_state(root, exclude=()):
    """``{relative path: (kind, mode, size, sha256 or link target)}`` of everything under ``root`` but ``exclude``.

    Unlike file_tree it also sees directories, links and modes: a
    check-mode run must not create a directory or chmod a file either.
    ``exclude`` holds top-level names (the maintenance log, the database files).
    """
    state = {}
    for folder, dirs, names in os.walk(root):
        if folder == root:
            dirs[:] = [d for d in dirs if d not in exclude]
            names = [n for n in names if n not in exclude]
        for name in dirs + names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                state[rel] = ('link', os.readlink(path))
            elif os.path.isdir(path):
                state[rel] = ('dir', oct(info.st_mode & 0o7777))
            else:
                state[rel] = ('file', oct(info.st_mode & 0o7777), info.st_size, sha256_of(path))
    return state


def sha256_of(path):
    """Hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def find_secrets(roots, secrets, skip=()):
    """``[(path, secret label)]`` of every regular file under ``roots`` (but the paths in ``skip``) holding a secret.

    ``secrets`` maps a label to the secret string; files are searched as bytes,
    so binary files (archives are compressed: see also their members) count too.
    """
    needles = dict((label, value.encode()) for label, value in secrets.items())
    skip = set(os.path.abspath(p) for p in skip)
    hits = []
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.abspath(os.path.join(folder, d)) not in skip]
            for name in names:
                path = os.path.join(folder, name)
                if os.path.abspath(path) in skip or os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, 'rb') as handle:
                    data = handle.read()
                hits += [(path, label) for label, needle in needles.items() if needle in data]
    return hits
