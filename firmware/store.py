"""Persistence on the board's flash: atomic JSON files under one state directory.

A write goes to a temp file that is then renamed over the old one, so a power
cut leaves either the old or the new content, never half a file. A missing or
corrupt file reads as None plus a message the caller reports; the corrupt file
is kept aside for diagnosis and never read again, so it cannot cause a crash loop.
"""
import json
import os

from firmware import jsonin
from firmware.compat import file_exists, fsync_dir, makedirs, remove


class Store:
    def __init__(self, root):
        self.root = root.rstrip("/") or "."
        makedirs(self.root)
        self.writes = 0  # flash writes since boot, for the benchmarks
        # The simulator's power-cut injection: fn(name, file, text) runs before
        # each write's text goes to its temp file. None on a board.
        self.on_write = None

    def path(self, name):
        return self.root + "/" + name

    def read_json(self, name):
        """Returns (obj, error): (None, None) when missing, (None, msg) when corrupt.

        Never raises: a file that cannot be read, is not UTF-8 or not JSON counts
        as corrupt and is set aside.
        """
        p = self.path(name)
        # A temp file left by a cut write is stale: the rename never happened.
        remove(p + ".tmp")
        if not file_exists(p):
            return None, None
        try:
            with open(p, "rb") as f:
                data = f.read()
            # Strict UTF-8 and JSON, nesting bounded, on both runtimes.
            try:
                return jsonin.loads(data), None
            except ValueError:
                # A file from earlier firmware may hold encoded surrogate pairs: join
                # them rather than set every setting aside for one emoji.
                fixed = jsonin.join_encoded_pairs(data)
                if fixed is None:
                    raise
                return jsonin.loads(fixed), None
        except Exception:  # unreadable, undecodable, not JSON, nested too deep, too big
            self._quarantine(p)
            return None, name + " corrupt, defaults used"

    def _quarantine(self, p):
        remove(p + ".corrupt")
        try:
            os.rename(p, p + ".corrupt")
        except OSError:
            remove(p)

    def write_json(self, name, obj):
        self.write_text(name, json.dumps(obj, separators=(",", ":")))

    def write_text(self, name, text):
        p = self.path(name)
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            hook = self.on_write
            if hook is not None:
                hook(name, f, text)
            f.write(text)
            f.flush()
            try:
                os.fsync(f.fileno())
            except (AttributeError, OSError):
                pass
        os.rename(tmp, p)
        fsync_dir(self.root)
        self.writes += 1

    def exists(self, name):
        return file_exists(self.path(name))

    def delete(self, name):
        remove(self.path(name))

    def listdir(self, sub=""):
        try:
            return os.listdir(self.path(sub) if sub else self.root)
        except OSError:
            return []
