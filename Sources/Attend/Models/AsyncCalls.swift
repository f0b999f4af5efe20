import Foundation

// `async` variants of the long calls. Each runs its synchronous counterpart in a detached
// task, so the caller's thread (the main actor, a UI thread, a server's event loop) is free
// while it computes, and cancelling the awaiting task cancels the detached one. They have
// their own names (…Async): an `async` overload of the same name would be chosen over the
// synchronous call inside every `Task { }` closure, changing code that compiles today.
// See <doc:Concurrency> for what happens when several calls run at once.

/// Runs `work` in a detached task at `priority`, on a thread outside the cooperative pool
/// (``detachedBlockingTask(priority:_:)``), and returns its result; cancelling the calling
/// task cancels that task (`work` sees `Task.isCancelled`).
func detachedCall<T: Sendable>(
    priority: TaskPriority?, _ work: @escaping @Sendable () throws -> T
) async throws -> T {
    try Task.checkCancellation()
    let task = detachedBlockingTask(priority: priority) { try work() }
    return try await withTaskCancellationHandler {
        try await task.value
    } onCancel: {
        task.cancel()
    }
}

extension SentenceEmbedder {
    /// ``embed(_:batchSize:compute:)`` off the caller's thread: the sentence vectors of
    /// `texts`, `[texts.count, dimension]`, in order, computed in a detached task at
    /// `priority`. Throws ``ModelInputError`` as the synchronous call, or `CancellationError`
    /// when the calling task is cancelled before the work starts (once started, the texts are
    /// embedded to the end). Same cost and same results as the synchronous call.
    public func embedAsync(
        _ texts: [String], batchSize: Int = 32, compute: Compute = .default, priority: TaskPriority? = nil
    ) async throws -> Tensor {
        try await detachedCall(priority: priority) { try self.embed(texts, batchSize: batchSize, compute: compute) }
    }
}

extension BERTModel {
    /// ``forward(inputIDs:tokenTypeIDs:attentionMask:outputHiddenStates:outputAttentions:compute:)`` off the
    /// caller's thread, in a detached task at `priority`: the same output for `[batch][seq]`
    /// inputs, at the same cost. Throws ``ModelInputError`` as the synchronous call, or
    /// `CancellationError` when the calling task is cancelled before the pass starts.
    public func forwardAsync(
        inputIDs: [[Int]], tokenTypeIDs: [[Int]]? = nil, attentionMask: [[Int]]? = nil,
        outputHiddenStates: Bool = false, outputAttentions: Set<Int> = [], compute: Compute = .default, priority: TaskPriority? = nil
    ) async throws -> BERTOutput {
        try await detachedCall(priority: priority) {
            try self.forward(
                inputIDs: inputIDs, tokenTypeIDs: tokenTypeIDs, attentionMask: attentionMask,
                outputHiddenStates: outputHiddenStates, outputAttentions: outputAttentions, compute: compute)
        }
    }
}

extension Seq2SeqModel {
    /// ``generate(sources:config:compute:)`` off the caller's thread, in a detached task at
    /// `priority`: the same sequences at the same cost. Cancelling the calling task stops the
    /// generation at its next decoder step with `CancellationError`; otherwise throws
    /// ``GenerationError`` as the synchronous call.
    public func generateAsync(
        sources: [[Int]], config: GenerationConfig? = nil, compute: Compute = .default, priority: TaskPriority? = nil
    ) async throws -> GenerationOutput {
        try await detachedCall(priority: priority) { try self.generate(sources: sources, config: config, compute: compute) }
    }
}

extension TextToTextModel {
    /// ``generate(_:config:compute:)`` off the caller's thread, in a detached task at
    /// `priority`: one ``TextGeneration`` per text (per returned sequence with beams), at the
    /// same cost. Cancelling the calling task stops the generation at its next decoder step
    /// with `CancellationError`; otherwise throws as the synchronous call.
    public func generateAsync(
        _ texts: [String], config: GenerationConfig? = nil, compute: Compute = .default, priority: TaskPriority? = nil
    ) async throws -> [TextGeneration] {
        try await detachedCall(priority: priority) { try self.generate(texts, config: config, compute: compute) }
    }
}

extension CausalLanguageModel {
    /// ``generate(prompts:config:compute:)`` off the caller's thread, in a detached task at
    /// `priority` (``DecoderOnlyModel`` and every other decoder-only model): the same rows
    /// (left-padded prompt + new tokens) at the same cost. Cancelling the calling task stops
    /// the generation at its next step with `CancellationError`; otherwise throws
    /// ``GenerationError`` as the synchronous call.
    public func generateAsync(
        prompts: [[Int]], config: GenerationConfig? = nil, compute: Compute = .default, priority: TaskPriority? = nil
    ) async throws -> GenerationOutput {
        try await detachedCall(priority: priority) { try self.generate(prompts: prompts, config: config, compute: compute) }
    }
}
