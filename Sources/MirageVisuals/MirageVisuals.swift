// MirageVisuals: dependency-free pictures: a PNG encoder, an RGB canvas with a bitmap font, attention
// heatmaps, line plots and self-contained HTML reports. See docs/visuals.md.
