"""Where an encoded image goes: our descriptor, with the OS's own error kept."""

from __future__ import annotations

import os


class OutputWriteError(Exception):
    """Writing the encoded image failed (disk full, directory gone): a fault
    of where we write, not of the original."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class DescriptorWriter:
    """Writes libvips' output to our descriptor and keeps the OSError, which
    a plain file target would reduce to "unable to write to target".

    The handler must never raise into libvips: it records and returns -1,
    and the save step re-raises after the call.
    """

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor
        self.error: OSError | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += os.write(self.descriptor, view[written:])
            return written
        except OSError as error:
            # Without its traceback: a frame of it holds this writer, a cycle
            # that kept the failed render's target and images alive.
            self.error = error.with_traceback(None)
            return -1
