/// What stops training: a batch the model cannot take (an id outside the vocabulary, ragged
/// rows, a missing label), a batches file that is not JSON lines of integer lists, an
/// optimizer or schedule setting out of range, a state file that does not match the model.
/// The message names what is wrong and where (file line, batch row, position) in one line,
/// as the command line prints it.
public struct TrainingError: Error, Equatable, CustomStringConvertible {
    /// The one-line message.
    public let message: String

    /// An error with this message.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
