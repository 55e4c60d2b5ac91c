import Testing
@testable import MirageAnalysis
