/// Input a model cannot take: token ids outside the vocabulary, rows of different lengths, a
/// sequence longer than the position table, a head the checkpoint does not have, a tensor of
/// the wrong shape, a size or a ``Compute`` out of range (fewer than 1 thread, a kernel
/// variant this CPU cannot run). The message names what is wrong and where (batch row and
/// position), in one line, as the command line prints it.
public struct ModelInputError: Error, Equatable, CustomStringConvertible {
    /// The one-line message.
    public let message: String

    /// An error with this message.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
