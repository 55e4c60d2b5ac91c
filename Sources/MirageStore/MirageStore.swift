// MirageStore: the SQLite run store (protocols, models, decoders, runs, items, scores, metrics).
