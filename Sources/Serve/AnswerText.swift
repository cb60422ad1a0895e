import ModelRuntime

/// The text of an answer as its tokens arrive: what can be sent to a streaming client now, and
/// where a `stop` string ends the answer.
///
/// Byte-level tokens can end inside a UTF-8 character (decoded as U+FFFD until the rest arrives),
/// and the end of the text may be the start of a stop string; both are held back until the next
/// tokens settle them, so every piece sent is final. The text sent in pieces adds up to `text`.
public struct AnswerText: Sendable {
    /// The `stop` strings of the request (at most 4, none empty).
    public let stops: [[Unicode.Scalar]]
    /// The tokens so far, stop token included.
    public private(set) var ids: [Int] = []
    /// True once a stop string has appeared: the answer ends before it.
    public private(set) var stoppedByString = false
    /// Unicode scalars already handed out by `append` or `finish`.
    private var sent = 0
    private var current: [Unicode.Scalar] = []

    public init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.unicodeScalars) }
    }

    /// Adds a token and returns the text that became final (possibly empty).
    public mutating func append(_ token: Int, tokenizer: BPETokenizer) -> String {
        ids.append(token)
        current = Array(tokenizer.decode(ids, skipSpecial: true).unicodeScalars)
        if let cut = earliestStop() {
            current.removeSubrange(cut...)
            stoppedByString = true
            return take(current.count)
        }
        var end = current.count
        while end > 0 && current[end - 1] == "\u{FFFD}" { end -= 1 }
        end -= heldForStop(end)
        return take(end)
    }

    /// The rest of the text once the answer has ended. `cutByLength`: the answer was cut by
    /// `max_tokens`, so an incomplete character at its end is left out (as `corpus generate`
    /// leaves it out).
    public mutating func finish(cutByLength: Bool) -> String {
        if cutByLength && !stoppedByString {
            while current.last == "\u{FFFD}" { current.removeLast() }
        }
        return take(current.count)
    }

    /// The whole text so far (after `finish`, the answer).
    public var text: String { Self.string(current[0..<min(sent, current.count)]) }

    private mutating func take(_ end: Int) -> String {
        guard end > sent else { return "" }
        let piece = Self.string(current[sent..<end])
        sent = end
        return piece
    }

    /// The first scalar offset at which a stop string occurs in `current`.
    private func earliestStop() -> Int? {
        var best: Int?
        for stop in stops where stop.count <= current.count {
            for start in 0...(current.count - stop.count) where best.map({ start < $0 }) ?? true {
                if current[start..<(start + stop.count)].elementsEqual(stop) { best = start; break }
            }
        }
        return best
    }

    /// How many scalars before `end` could be the beginning of a stop string (the longest such
    /// suffix of `current[..<end]`).
    private func heldForStop(_ end: Int) -> Int {
        var held = 0
        for stop in stops {
            for k in stride(from: min(stop.count - 1, end), to: held, by: -1)
            where current[(end - k)..<end].elementsEqual(stop[0..<k]) {
                held = k
                break
            }
        }
        return held
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars)
        return String(s)
    }
}
