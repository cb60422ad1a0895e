import Foundation

/// One answer to score: the prompt as the model read it (the rendered chat template), the
/// answer's text, and the record's reference answer.
public struct RewardInput: Sendable, Equatable {
    public var prompt: String
    public var answer: String
    public var reference: String

    public init(prompt: String, answer: String, reference: String) {
        self.prompt = prompt
        self.answer = answer
        self.reference = reference
    }
}

/// A rule-based reward, given on the command line (`--reward KIND:ARGUMENT`, docs/TRAINING.md
/// "Rewards"):
///
/// - `regex:PATTERN`: 1 when the answer contains a match of PATTERN (ICU regular expression), else 0.
/// - `extract:PATTERN`: 1 when PATTERN's first capture group (the whole match without a group),
///   found first in the answer, equals the same extracted from the reference answer (both
///   trimmed), else 0. Every reference must match: checked before training starts.
/// - `length:MIN-MAX`: 1 when the answer has MIN to MAX characters (trimmed), else 0.
/// - `cmd:PROGRAM`: PROGRAM (run by `/bin/sh -c`) reads one JSON object per line on standard
///   input, `{"prompt": …, "answer": …, "reference": …}`, and writes one number per line; the
///   escape hatch for any other reward. It must finish within the timeout and exit 0.
public struct RewardFunction: Sendable, CustomStringConvertible {
    enum Kind: Sendable {
        case regex(NSRegularExpression)
        case extract(NSRegularExpression)
        case length(ClosedRange<Int>)
        case command(String)
    }

    /// The specification as given (`extract:答案[:：]\s*(\d+)`): what lineage records.
    public let spec: String
    let kind: Kind
    /// Seconds a `cmd:` program may take for one batch before it is stopped.
    public var timeout: Double = 60

    public var description: String { spec }

    /// The metric name of this reward (`rewards/extract`, `rewards/cmd`...); a second reward of
    /// the same kind gets its position appended by `RewardSet`.
    public var kindName: String {
        switch kind {
        case .regex: return "regex"
        case .extract: return "extract"
        case .length: return "length"
        case .command: return "cmd"
        }
    }

    /// Parses `KIND:ARGUMENT`.
    /// - Throws: `TrainerError.unsupported` naming the spec, what is wrong and the forms accepted.
    public init(spec: String) throws {
        self.spec = spec
        guard let colon = spec.firstIndex(of: ":") else {
            throw TrainerError.unsupported("--reward \(spec): write KIND:ARGUMENT with KIND regex, extract, length or cmd (e.g. extract:答案[:：]\\s*(\\d+))")
        }
        let name = String(spec[..<colon]), argument = String(spec[spec.index(after: colon)...])
        func regex() throws -> NSRegularExpression {
            do {
                return try NSRegularExpression(pattern: argument, options: [])
            } catch {
                throw TrainerError.unsupported("--reward \(spec): the pattern '\(argument)' does not compile (\(error.localizedDescription)); check its brackets and escapes (quote it for the shell)")
            }
        }
        switch name {
        case "regex": kind = .regex(try regex())
        case "extract": kind = .extract(try regex())
        case "length":
            let parts = argument.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let low = parts[0], let high = parts[1], low >= 0, low <= high else {
                throw TrainerError.unsupported("--reward \(spec): write length:MIN-MAX with whole numbers of characters, MIN ≤ MAX (e.g. length:20-400)")
            }
            kind = .length(low...high)
        case "cmd":
            guard !argument.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw TrainerError.unsupported("--reward \(spec): name the program after cmd: (e.g. cmd:'python3 score.py')")
            }
            kind = .command(argument)
        default:
            throw TrainerError.unsupported("--reward \(spec): unknown kind '\(name)'; use regex, extract, length or cmd")
        }
    }

    /// The text PATTERN extracts from `text`: its first group (or the whole match), trimmed.
    static func extracted(_ pattern: NSRegularExpression, from text: String) -> String? {
        let range = NSRange(text.startIndex..., in: text)
        guard let match = pattern.firstMatch(in: text, range: range) else { return nil }
        let group = match.numberOfRanges > 1 && match.range(at: 1).location != NSNotFound ? match.range(at: 1) : match.range
        guard let r = Range(group, in: text) else { return nil }
        return text[r].trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// For `extract:`, the index of the first reference PATTERN finds nothing in (nil: all
    /// match, or another kind).
    public func firstUncheckableReference(_ references: [String]) -> Int? {
        guard case .extract(let pattern) = kind else { return nil }
        return references.firstIndex { Self.extracted(pattern, from: $0) == nil }
    }

    /// The reward of every input, in order.
    /// - Throws: `TrainerError.rewardProgram` when a `cmd:` program fails, hangs or prints
    ///   something else than one number per input.
    public func scores(_ inputs: [RewardInput]) throws -> [Double] {
        switch kind {
        case .regex(let pattern):
            return inputs.map { pattern.firstMatch(in: $0.answer, range: NSRange($0.answer.startIndex..., in: $0.answer)) == nil ? 0 : 1 }
        case .extract(let pattern):
            return inputs.map { input in
                guard let got = Self.extracted(pattern, from: input.answer), let want = Self.extracted(pattern, from: input.reference) else { return 0 }
                return got == want ? 1 : 0
            }
        case .length(let range):
            return inputs.map { range.contains($0.answer.trimmingCharacters(in: .whitespacesAndNewlines).count) ? 1 : 0 }
        case .command(let program):
            return try RewardProgram(command: program, timeout: timeout).run(inputs)
        }
    }
}

/// Several rewards with their weights (`--reward` repeated, `--reward-weights`, TRL's
/// `reward_weights`): the total reward of an answer is Σ weight·reward.
public struct RewardSet: Sendable {
    public var functions: [RewardFunction]
    public var weights: [Double]

    /// - Throws: `TrainerError.unsupported` when the weights do not match the rewards in number.
    public init(functions: [RewardFunction], weights: [Double]? = nil) throws {
        guard !functions.isEmpty else { throw TrainerError.unsupported("give at least one --reward (regex:, extract:, length: or cmd:)") }
        let weights = weights ?? [Double](repeating: 1, count: functions.count)
        guard weights.count == functions.count, weights.allSatisfy(\.isFinite) else {
            throw TrainerError.unsupported("--reward-weights has \(weights.count) numbers for \(functions.count) rewards; give one finite weight per --reward")
        }
        self.functions = functions
        self.weights = weights
    }

    /// Metric names, one per function: `extract`, `length`, or `extract_2` for a second one.
    public var names: [String] {
        var seen: [String: Int] = [:]
        return functions.map { f in
            seen[f.kindName, default: 0] += 1
            let n = seen[f.kindName] ?? 1
            return n == 1 ? f.kindName : "\(f.kindName)_\(n)"
        }
    }

    /// Each function's scores, and the weighted totals.
    public func score(_ inputs: [RewardInput]) throws -> (perFunction: [[Double]], total: [Double]) {
        let per = try functions.map { try $0.scores(inputs) }
        let total = inputs.indices.map { i in zip(per, weights).reduce(0.0) { $0 + $1.1 * $1.0[i] } }
        return (per, total)
    }
}

/// A `cmd:` reward program run once per batch.
struct RewardProgram {
    var command: String
    var timeout: Double

    func run(_ inputs: [RewardInput]) throws -> [Double] {
        var input = Data()
        for item in inputs {
            let object: [String: String] = ["prompt": item.prompt, "answer": item.answer, "reference": item.reference]
            input += try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            input.append(0x0A)
        }
        // A program that exits before reading its input must give us EPIPE, not kill us by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do {
            try process.run()
        } catch {
            throw TrainerError.rewardProgram(command: command, detail: "cannot start /bin/sh (\(error.localizedDescription))")
        }
        // Read both outputs while writing, so a program that prints a lot cannot block on a full pipe.
        let collected = OutputCollector()
        let group = DispatchGroup()
        for (handle, keep) in [(stdout.fileHandleForReading, true), (stderr.fileHandleForReading, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = handle.readDataToEndOfFile()
                collected.set(data, stdout: keep)
                group.leave()
            }
        }
        let bytes = input
        DispatchQueue.global().async {
            // A program that exits without reading all of its input closes the pipe: ignore that.
            try? stdin.fileHandleForWriting.write(contentsOf: bytes)
            try? stdin.fileHandleForWriting.close()
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            throw TrainerError.rewardProgram(command: command, detail: "did not finish within \(Int(timeout)) s for \(inputs.count) answers; it was stopped (raise --reward-timeout or make it faster)")
        }
        process.waitUntilExit()
        let (out, err) = collected.value
        let errText = String(decoding: err.suffix(600), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit ? "exited with status \(process.terminationStatus)" : "was killed by signal \(process.terminationStatus)"
            throw TrainerError.rewardProgram(command: command, detail: "\(how)" + (errText.isEmpty ? "" : "; its standard error ends: \(errText)"))
        }
        let lines = String(decoding: out, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        let numbers = lines.last == "" ? Array(lines.dropLast()) : lines
        guard numbers.count == inputs.count else {
            throw TrainerError.rewardProgram(command: command, detail: "printed \(numbers.count) lines for \(inputs.count) answers; print one number per input line")
        }
        return try numbers.enumerated().map { i, text in
            guard let value = Double(text), value.isFinite else {
                throw TrainerError.rewardProgram(command: command, detail: "line \(i + 1) of its output is '\(text.prefix(80))', not a number; print one number per input line")
            }
            return value
        }
    }
}

/// The two outputs of a reward program, filled by two reading threads.
private final class OutputCollector: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var out = Data(), err = Data()

    func set(_ data: Data, stdout: Bool) {
        lock.lock()
        if stdout { out = data } else { err = data }
        lock.unlock()
    }

    var value: (Data, Data) {
        lock.lock()
        defer { lock.unlock() }
        return (out, err)
    }
}
