// MirageData: COCO annotations, question files, and the data sources the scorers need (fetched from their
// public URLs with pinned checksums, or imported from a folder the user names).
