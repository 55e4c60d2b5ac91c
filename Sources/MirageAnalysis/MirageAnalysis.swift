// MirageAnalysis: OPERA's over-trust view of a run: last-layer attention capture, summary-token detection,
// and CHAIR of sub-sentences grouped by the summary tokens before them. See docs/overtrust.md.
