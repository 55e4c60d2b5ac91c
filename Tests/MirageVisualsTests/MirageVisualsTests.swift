import Testing
@testable import MirageVisuals
