import CMirageKernels
import Foundation
import Synchronization

/// One persistent pool for the whole engine: a thread per extra core that spins (with `pause`) while work
/// keeps arriving during a forward pass and parks on a condition variable after `parkAfter` of idleness.
///
/// `parallelFor` publishes a job by bumping a generation counter; every participant (the caller included)
/// claims task indices with a compare-and-swap on one word holding `generation << 32 | nextTask`, so a thread
/// that is late from an earlier job can never claim a task of a newer one.
/// Calls made while a job is already running (nested or from another thread) run serially on the caller.
public final class WorkerPool: @unchecked Sendable {
    /// Threads taking part in `parallelFor`, the caller included.
    public let threadCount: Int
    private let state: PoolState
    /// Scratch memory for kernels running on this pool (packed GEMM inputs).
    let scratch = ScratchArena()

    /// - Parameters:
    ///   - threadCount: participants including the caller (one background thread per extra one).
    ///   - parkAfter: how long an idle worker spins before it parks (seconds).
    public init(threadCount: Int = ProcessInfo.processInfo.activeProcessorCount, parkAfter: Double = 0.004) {
        self.threadCount = max(1, threadCount)
        state = PoolState(spinNanoseconds: UInt64(max(0, parkAfter) * 1e9))
        for _ in 1..<self.threadCount { state.startWorker() }
    }

    deinit { state.shutdown() }

    /// Calls `body(t)` for every t in 0..<taskCount across the pool (the caller participates) and returns
    /// when all calls have finished. Tasks are claimed dynamically, so uneven tasks balance themselves.
    public func parallelFor(_ taskCount: Int, _ body: (Int) -> Void) {
        if taskCount <= 0 { return }
        if taskCount == 1 || threadCount == 1 || !state.tryBegin() {
            for t in 0..<taskCount { body(t) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            state.run(taskCount: taskCount, body: escapable)
        }
        state.end()
    }
}

private final class PoolState: @unchecked Sendable {
    /// generation << 32 | index of the next unclaimed task.
    let ticket = Atomic<UInt64>(0)
    let completed = Atomic<Int>(0)
    let busy = Atomic<Bool>(false)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    let spinNanoseconds: UInt64
    // Written by the caller before the release-store of `ticket`, read by workers after acquiring it.
    var body: ((Int) -> Void)?
    var taskCount = 0

    /// Pauses before a waiting thread starts giving its core away with `sched_yield` (~20–60 µs: a `pause`
    /// takes ~40–140 cycles); gaps between the calls of one forward pass are shorter, so an unloaded
    /// machine rarely yields.
    static let yieldAfterSpins = 1 << 10

    init(spinNanoseconds: UInt64) { self.spinNanoseconds = spinNanoseconds }

    func tryBegin() -> Bool {
        busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    func end() { busy.store(false, ordering: .releasing) }

    func run(taskCount: Int, body: @escaping (Int) -> Void) {
        self.body = body
        self.taskCount = taskCount
        completed.store(0, ordering: .relaxed)
        let generation = (ticket.load(ordering: .relaxed) >> 32) &+ 1
        ticket.store(generation << 32, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
        work(generation: generation)
        // A worker still running a task may have been preempted (a machine with more runnable threads
        // than cores): after `yieldAfterSpins` pauses the caller offers its core on every round, so that
        // worker can finish instead of waiting out the caller's time slice.
        var spins = 0
        while completed.load(ordering: .acquiring) < taskCount {
            mk_cpu_pause()
            spins &+= 1
            if spins >= Self.yieldAfterSpins { sched_yield() }
        }
        // Close the generation before the next call rewrites `taskCount` and `body`: a worker late from
        // this one may hold the word (generation, taskCount); if it read the next call's larger
        // taskCount, its claim of that word would succeed and run the next call's task `taskCount`
        // twice (seen in WorkerPoolTests.everyTaskRunsExactlyOnce about once in 10 runs). After this
        // store such a claim fails, and index 0xFFFF_FFFF is past every task count.
        ticket.store(generation << 32 | 0xFFFF_FFFF, ordering: .sequentiallyConsistent)
        self.body = nil
    }

    /// Claims and runs tasks of `generation` until none is left.
    @inline(__always)
    func work(generation: UInt64) {
        while true {
            let word = ticket.load(ordering: .acquiring)
            if word >> 32 != generation { return }
            let index = Int(word & 0xFFFF_FFFF)
            if index >= taskCount { return }
            if ticket.compareExchange(expected: word, desired: word + 1, ordering: .acquiringAndReleasing).exchanged {
                body!(index)
                completed.add(1, ordering: .releasing)
            }
        }
    }

    func workerLoop() {
        // Generation 0 is "no job yet": a thread that starts late still joins the first job.
        var seen: UInt64 = 0
        while true {
            var generation = ticket.load(ordering: .acquiring) >> 32
            if generation == seen {
                let start = DispatchTime.now().uptimeNanoseconds
                var spins = 0
                while generation == seen {
                    if stopping.load(ordering: .relaxed) { return }
                    mk_cpu_pause()
                    spins &+= 1
                    if spins & 255 == 0, DispatchTime.now().uptimeNanoseconds &- start > spinNanoseconds {
                        generation = park(seen: seen)
                    } else {
                        // Spinning past `yieldAfterSpins` most likely waits for a caller that was preempted:
                        // offer the core every 256 rounds (returns at once when nothing else is runnable).
                        if spins >= Self.yieldAfterSpins && spins & 255 == 0 { sched_yield() }
                        generation = ticket.load(ordering: .acquiring) >> 32
                    }
                }
            }
            if stopping.load(ordering: .relaxed) { return }
            seen = generation
            work(generation: generation)
        }
    }

    /// Sleeps until the generation moves past `seen` (or shutdown); returns the new generation.
    private func park(seen: UInt64) -> UInt64 {
        condition.lock()
        sleepers.add(1, ordering: .sequentiallyConsistent)
        var generation = ticket.load(ordering: .sequentiallyConsistent) >> 32
        while generation == seen && !stopping.load(ordering: .sequentiallyConsistent) {
            condition.wait()
            generation = ticket.load(ordering: .sequentiallyConsistent) >> 32
        }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        condition.unlock()
        return generation
    }

    /// A plain pthread (detached; it exits at shutdown). Unlike Foundation's Thread it inherits the
    /// caller's scheduling priority, so e.g. a `nice`d benchmark keeps its workers at the same priority.
    func startWorker() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            let state = Unmanaged<PoolState>.fromOpaque(context!).takeRetainedValue()
            state.workerLoop()
            return nil
        }, context)
        precondition(result == 0, "WorkerPool: pthread_create failed (\(result)); lower threadCount")
        pthread_detach(thread)
    }

    func shutdown() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}
