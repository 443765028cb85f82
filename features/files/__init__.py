"""How headstart touches the file system: the cache folder's names, outputs replaced whole, regular files only,
room on the disk, the cache's lock, and the one CSV writer."""
