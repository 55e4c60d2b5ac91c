// MirageRunner: protocol files (Annotations/protocols), experiment files, image sets, and the runner that
// drives models x decoders x items into the run store, resumable and shardable. See docs/runner.md.
