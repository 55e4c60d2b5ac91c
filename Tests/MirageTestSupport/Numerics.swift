/// Comparing model outputs with reference values.
public enum Numerics {
    /// max |a − b| / max |b|.
    public static func relativeError<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float
    where A.Element == Float, B.Element == Float {
        precondition(a.count == b.count)
        var maxDiff: Float = 0, maxRef: Float = 0
        for (x, y) in zip(a, b) {
            maxDiff = max(maxDiff, abs(x - y))
            maxRef = max(maxRef, abs(y))
        }
        return maxDiff / max(maxRef, .leastNormalMagnitude)
    }
}
