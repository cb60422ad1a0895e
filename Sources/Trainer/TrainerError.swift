import ModelRuntime
/// Errors of the Trainer module. Every case names the file or tensor involved and, in its
/// description, what to do about it.
public enum TrainerError: Error, Equatable, CustomStringConvertible {
    /// A tensor does not have the shape the architecture requires.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A file could not be read or parsed; `detail` says what and where.
    case invalidFile(path: String, detail: String)
    /// Something the loader does not support (architecture, tensor type, template...).
    case unsupported(String)
    /// A `cmd:` reward program failed, hung or printed something else than numbers.
    case rewardProgram(command: String, detail: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(tensor, expected, found):
            return "tensor \(tensor): expected shape \(expected), found \(found); the weights do not match the configuration"
        case let .invalidFile(path, detail):
            return "\(path): \(detail)"
        case let .unsupported(what):
            return what
        case let .rewardProgram(command, detail):
            return "reward program '\(command)': \(detail)"
        }
    }
}
