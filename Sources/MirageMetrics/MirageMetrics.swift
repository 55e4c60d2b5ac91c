// MirageMetrics: the CHAIR and POPE scorers, each reproducing its reference implementation.
