"""Whether a file may be opened by a reader, and within which bounds: what kind of file it is (from its
bytes), the zip and XML checks every part goes through, and the bounded scan that measures each sheet
by the cells it holds."""
