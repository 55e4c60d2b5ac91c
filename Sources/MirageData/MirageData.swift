// MirageData: COCO annotations, question files, and the data sources the scorers need (fetched from their
// public URLs with pinned checksums, or imported from a folder the user names).

/// The Mirage release this build is, defined once here, in the lowest module that both the store and the command
/// line depend on: `mirage --version` prints it (`MirageVersion.string` of MirageCLISupport is this value), runs
/// record it, and the store writes it beside every schema migration it applies, so a build that finds migrations
/// it does not know can name the release that wrote them (`StoreError.newerSchema`).
public enum MirageRelease {
    public static let version = "0.1.0"
}
