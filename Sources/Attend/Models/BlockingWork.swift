// Where the asynchronous entry points run their blocking work: model steps are long
// synchronous calls, and running them on Swift's cooperative pool (one thread per core) would
// hold its threads, starving every other task of the process, the consumer of the very
// stream being produced included. Each such task prefers an executor of its own backed by a
// serial dispatch queue, which gets a thread outside the cooperative pool.
import Dispatch

/// A task executor that runs its jobs on one serial dispatch queue (a thread of its own while
/// it has work), so a task that blocks in synchronous model code does not hold a thread of the
/// cooperative pool. Cancellation and task-local values work as in any task.
@available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *)
final class BlockingWorkExecutor: TaskExecutor, @unchecked Sendable {
    private let queue: DispatchQueue

    init(label: String) { queue = DispatchQueue(label: label) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

/// A detached task for blocking model work: on its own thread where the runtime supports task
/// executors (any Linux Swift 6 runtime; macOS 15 and later), else on the cooperative pool.
func detachedBlockingTask<T: Sendable>(
    priority: TaskPriority? = nil, _ operation: @escaping @Sendable () async throws -> T
) -> Task<T, Error> {
    if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *) {
        return Task.detached(executorPreference: BlockingWorkExecutor(label: "attend.blocking-work"), priority: priority, operation: operation)
    }
    return Task.detached(priority: priority, operation: operation)
}
