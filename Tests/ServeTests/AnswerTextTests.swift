import ModelRuntime
import Serve
import Testing

/// The text of an answer as tokens arrive: incomplete characters and possible starts of stop
/// strings are held back, every piece sent is final, and the pieces add up to the answer.
@Suite struct AnswerTextTests {
    /// Byte-level pieces: "Ã" is byte 0xC3 and "©" byte 0xA9, together "é".
    static let tokenizer: BPETokenizer? = try? BPETokenizer(
        tokens: ["<unk>", "a", "b", "c", "Ã", "©", "Ġ"], merges: [], specialTokenIDs: [0], preTokenizer: .gpt2, bos: nil, eos: nil)

    func feed(_ ids: [Int], stops: [String] = [], cutByLength: Bool = false) throws -> (pieces: [String], text: AnswerText) {
        let tokenizer = try #require(Self.tokenizer)
        var answer = AnswerText(stops: stops)
        var pieces: [String] = []
        for id in ids {
            pieces.append(answer.append(id, tokenizer: tokenizer))
            if answer.stoppedByString { break }
        }
        pieces.append(answer.finish(cutByLength: cutByLength))
        return (pieces, answer)
    }

    @Test func anIncompleteCharacterWaitsForItsLastByte() throws {
        let (pieces, answer) = try feed([1, 4, 5, 2])
        #expect(pieces == ["a", "", "é", "b", ""])
        #expect(answer.text == "aéb")
    }

    @Test func aStopStringEndsTheAnswerBeforeIt() throws {
        let (pieces, answer) = try feed([1, 2, 3, 1], stops: ["bc"])
        #expect(pieces == ["a", "", "", ""])
        #expect(answer.stoppedByString)
        #expect(answer.text == "a")
        #expect(answer.ids == [1, 2, 3])
    }

    @Test func aHeldBackStartThatIsNoStopIsSentLater() throws {
        let (pieces, answer) = try feed([1, 2, 1, 2], stops: ["bc"])
        #expect(pieces == ["a", "", "ba", "", "b"])
        #expect(!answer.stoppedByString)
        #expect(answer.text == "abab")
    }

    @Test func theEarliestOfSeveralStopsWins() throws {
        let (_, answer) = try feed([1, 2, 3, 1, 2], stops: ["ca", "bc"])
        #expect(answer.text == "a")
    }

    /// Cut by max_tokens inside a character: the incomplete bytes are left out, as
    /// `corpus generate` leaves them out; a stop token ending there keeps them.
    @Test func anAnswerCutInsideACharacterEndsBeforeIt() throws {
        #expect(try feed([1, 4], cutByLength: true).text.text == "a")
        #expect(try feed([1, 4], cutByLength: false).text.text == "a\u{FFFD}")
    }

    @Test func constantTimeComparison() {
        #expect(ConstantTime.equal(Array("secret".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equal(Array("secret".utf8), Array("secreT".utf8)))
        #expect(!ConstantTime.equal(Array("secret".utf8), Array("secret2".utf8)))
        #expect(!ConstantTime.equal(Array("".utf8), Array("x".utf8)))
        #expect(ConstantTime.equal([UInt8](), [UInt8]()))
    }
}
