// MirageDecoding: decoding methods (greedy, sampling, beam search, OPERA, VCD, DoLa, ...) behind one
// `Decoder` protocol, driving MirageEngine sessions.
