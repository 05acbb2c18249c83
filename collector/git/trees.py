"""Objects by name (``<commit>:<path>``) through one long-lived ``git cat-file --batch``: what a render
needs to know before it runs (which directories it reads, their tree ids) costs no process per question,
so a render answered from the cache costs milliseconds."""

from __future__ import annotations

from dataclasses import dataclass

from liubai.collector.git.blobs import CatFileBatch

__all__ = ["GitObject", "TreeReader"]


@dataclass(frozen=True, slots=True)
class GitObject:
    oid: str
    type: str  # blob, tree, commit, tag
    data: bytes

    def names(self) -> list[str]:
        """The entry names of a tree object (empty for any other type)."""
        if self.type != "tree":
            return []
        width = len(self.oid) // 2  # 20 bytes for SHA-1, 32 for SHA-256
        names: list[str] = []
        at = 0
        while at < len(self.data):
            nul = self.data.index(b"\0", at)
            names.append(self.data[at:nul].split(b" ", 1)[1].decode("utf-8", "surrogateescape"))
            at = nul + 1 + width
        return names


class TreeReader(CatFileBatch):
    """Object names asked one at a time."""

    def get(self, name: str) -> GitObject | None:
        """The object ``name`` names (``<commit>:<path>``, ``<commit>^{tree}``), None if there is none."""
        if "\n" in name:
            return None  # cannot be asked on this line protocol: as if absent (the render then says why)
        self._stdin.write(name.encode("utf-8", "surrogateescape") + b"\n")
        self._stdin.flush()
        header = self._stdout.readline().split()
        if not header:
            raise self._exited()
        if len(header) != 3 or not header[2].isdigit():
            return None  # "<name> missing" / "<name> ambiguous" (a name may hold spaces)
        data = self._stdout.read(int(header[2]))
        self._stdout.read(1)
        return GitObject(header[0].decode(), header[1].decode(), data)
