import Testing
@testable import MirageRunner
