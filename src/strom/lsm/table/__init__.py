"""The table format: how sorted entries are laid out in an immutable file and read back.

``block`` (data and index blocks, their trailer and compression), ``bloom`` (the per-table filter),
``sstable`` (writing and reading a whole table), ``cache`` (the LRU of verified blocks), ``checksum`` (masked
CRC-32C) and ``coding`` (varints and length-prefixed strings, also used by the WAL batch and the MANIFEST).
The byte layouts are specified in docs/lsm-format.md ("Blocks", "SSTable"); nothing here knows about levels,
sequence numbers or the MANIFEST.
"""
