import Foundation
import Testing
@testable import MirageKernels

@Suite struct WorkerPoolTests {
    /// Every index runs exactly once per call, over many calls of varying size.
    @Test func everyTaskRunsExactlyOnce() {
        let pool = WorkerPool(threadCount: 2)
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 64)
        defer { counts.deallocate() }
        for call in 0..<20_000 {
            let tasks = call % 41
            counts.initialize(repeating: 0)
            pool.parallelFor(tasks) { counts[$0] += 1 }
            for t in 0..<64 where counts[t] != (t < tasks ? 1 : 0) {
                Issue.record("call \(call): task \(t) ran \(counts[t]) times (of \(tasks))")
                return
            }
        }
    }

    /// Both threads take part when tasks take a while (the tasks sleep, so even on a loaded machine the
    /// worker gets a core within the ~80 ms the job lasts).
    @Test func workersParticipate() {
        let pool = WorkerPool(threadCount: 2)
        let threads = UnsafeMutableBufferPointer<pthread_t?>.allocate(capacity: 16)
        defer { threads.deallocate() }
        threads.initialize(repeating: nil)
        pool.parallelFor(16) { t in
            threads[t] = pthread_self()
            usleep(5000)
        }
        #expect(Set(threads.map { UInt($0!) }).count == 2)
    }

    /// Parked workers wake up; nested and concurrent calls run serially instead of deadlocking.
    @Test func parkingNestingAndConcurrentCallers() async {
        let pool = WorkerPool(threadCount: 2, parkAfter: 0.001)
        usleep(20_000) // the worker parks
        let sums = UnsafeMutableBufferPointer<Int>.allocate(capacity: 16)
        defer { sums.deallocate() }
        sums.initialize(repeating: 0)
        pool.parallelFor(16) { outer in
            pool.parallelFor(10) { inner in sums[outer] += inner + 1 }
        }
        #expect(sums.allSatisfy { $0 == 55 })

        let results = await withTaskGroup(of: Int.self) { group in
            for caller in 0..<4 {
                group.addTask {
                    let slots = UnsafeMutableBufferPointer<Int>.allocate(capacity: 100)
                    defer { slots.deallocate() }
                    var total = 0
                    for _ in 0..<200 {
                        slots.initialize(repeating: 0)
                        pool.parallelFor(100) { slots[$0] = $0 * caller }
                        total += slots.reduce(0, +)
                    }
                    return total
                }
            }
            var all: [Int] = []
            for await value in group { all.append(value) }
            return all.sorted()
        }
        #expect(results == [0, 990_000, 1_980_000, 2_970_000])
    }

    /// More busy threads than cores (three pools of 3 driven at once): waits long enough to reach the
    /// `sched_yield` path in both the caller's wait and the workers' spin, and every task still runs once.
    @Test func oversubscribedPoolsRunEveryTaskOnce() async {
        let failures = await withTaskGroup(of: Int.self) { group in
            for caller in 0..<3 {
                group.addTask {
                    let pool = WorkerPool(threadCount: 3)
                    let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 24)
                    defer { counts.deallocate() }
                    var wrong = 0
                    for call in 0..<300 {
                        let tasks = 1 + (call + caller) % 24
                        counts.initialize(repeating: 0)
                        pool.parallelFor(tasks) { t in
                            // Uneven tasks (some ~0.1 ms) so that participants wait on one another.
                            var x = Float(t)
                            for _ in 0..<(t % 3 == 0 ? 20_000 : 10) { x = x * 0.999 + 1 }
                            counts[t] += x.isFinite ? 1 : 2
                        }
                        for t in 0..<24 where counts[t] != (t < tasks ? 1 : 0) { wrong += 1 }
                    }
                    return wrong
                }
            }
            var total = 0
            for await wrong in group { total += wrong }
            return total
        }
        #expect(failures == 0)
    }

    /// Pools shut their threads down when released (creating many must not exhaust anything).
    @Test func poolsCanBeCreatedAndReleased() {
        for round in 0..<50 {
            let pool = WorkerPool(threadCount: 3)
            var hits = [Int](repeating: 0, count: 5)
            hits.withUnsafeMutableBufferPointer { h in pool.parallelFor(5) { h[$0] = round } }
            #expect(hits == [Int](repeating: round, count: 5))
        }
    }
}
