import CorpusDB
import Foundation
import Quality
import TestSupport
import Testing

@Suite("Check configuration files: hostile values are refused with the file, key and range")
struct CheckConfigurationTests {
    /// Loads `json` from a file and returns the QualityError it raised (nil when it loaded).
    static func error(_ json: String) throws -> QualityError? {
        let dir = try TestSupport.temporaryDirectory()
        let path = try TestSupport.write(json, to: "checks.json", in: dir)
        do {
            _ = try CheckConfiguration.load(path: path)
            return nil
        } catch let error as QualityError {
            #expect(error.message.hasPrefix(path + ": "), "the message names the file")
            return error
        }
    }

    /// Every share: huge, negative, above 1. 1e300 in `boilerplate.min_share` used to trap when
    /// multiplied by the record count and turned into an Int.
    @Test(arguments: [
        ("boilerplate", "min_share"), ("boilerplate", "max_answer_share"),
        ("repetition", "max_dominant_character_share"), ("repetition", "max_ngram_repetition"),
        ("special_characters", "max_share"), ("echo", "max_share"),
    ])
    func sharesOutsideZeroToOne(section: String, key: String) throws {
        for value in ["1e300", "-1e300", "-0.5", "1.5"] {
            let error = try #require(try Self.error(#"{"\#(section)": {"\#(key)": \#(value)}}"#), "\(section).\(key) = \(value) was accepted")
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("\(section).\(key) is "))
            #expect(error.message.contains("it must be a number from 0 to 1"))
        }
        #expect(try Self.error(#"{"\#(section)": {"\#(key)": 0}}"#) == nil)
        #expect(try Self.error(#"{"\#(section)": {"\#(key)": 1}}"#) == nil)
    }

    @Test func lengthRatioHasItsOwnRange() throws {
        let error = try #require(try Self.error(#"{"echo": {"min_length_ratio": 1e300}}"#))
        #expect(error.message.contains("echo.min_length_ratio is 1e+300; it must be a number from 0 to 100"))
        #expect(try Self.error(#"{"echo": {"min_length_ratio": -1}}"#) != nil)
        #expect(try Self.error(#"{"echo": {"min_length_ratio": 2.5}}"#) == nil)
    }

    @Test(arguments: [
        ("length", "min_prompt_chars"), ("length", "max_prompt_chars"), ("length", "min_answer_chars"),
        ("length", "max_answer_chars"), ("length", "max_prompt_tokens"), ("length", "max_answer_tokens"),
        ("repetition", "min_chars"), ("special_characters", "min_chars"), ("boilerplate", "min_sentence_chars"),
        ("echo", "min_answer_chars"),
    ])
    func negativeCounts(section: String, key: String) throws {
        let error = try #require(try Self.error(#"{"\#(section)": {"\#(key)": -3}}"#), "\(section).\(key) = -3 was accepted")
        #expect(error.message.contains("\(section).\(key) is -3; it must be a whole number of at least 0"))
    }

    /// Numbers no whole-number setting can hold, and numbers JSON cannot carry: an error, not a trap.
    @Test func hugeWholeNumbersAndOverflowingNumbersAreErrors() throws {
        for json in [#"{"boilerplate": {"min_records": 1e300}}"#, #"{"length": {"max_answer_chars": 1e19}}"#,
                     #"{"repetition": {"ngram": -1e300}}"#, #"{"boilerplate": {"min_share": 1e400}}"#,
                     #"{"near_duplicates": {"permutations": 1e300}}"#, #"{"near_duplicates": {"threshold": 1e300}}"#] {
            let error = try #require(try Self.error(json), "\(json) was accepted")
            #expect(error.code == .invalidConfiguration)
        }
    }

    @Test func existingMessagesAndUnreadableFile() throws {
        let error = try #require(try Self.error(#"{"boilerplate": {"min_records": 1}}"#))
        #expect(error.message.hasSuffix(": boilerplate.min_records must be at least 2"))
        let missing = try TestSupport.temporaryDirectory().appendingPathComponent("none.json").path
        #expect(throws: QualityError(.unreadableFile, "\(missing): cannot read the check configuration")) {
            try CheckConfiguration.load(path: missing)
        }
        let taxonomy = try TestSupport.write(#"{"department": {"内科": 0}}"#, to: "t.json", in: try TestSupport.temporaryDirectory())
        #expect(throws: QualityError(.invalidTaxonomy, "\(taxonomy): department=内科 needs a minimum count of at least 1")) {
            try Taxonomy.load(path: taxonomy)
        }
    }

    /// The defaults pass their own validation, and the boilerplate threshold at the largest share
    /// allowed runs without trapping.
    @Test func defaultsAndTheLargestShareRun() throws {
        #expect(try Self.error("{}") == nil)
        let dir = try TestSupport.temporaryDirectory()
        let path = try TestSupport.write(#"{"boilerplate": {"min_share": 1}}"#, to: "c.json", in: dir)
        let c = try CheckConfiguration.load(path: path)
        let records = (0..<3).map { i in
            CheckInput(id: Int64(i + 1), conversation: Conversation(messages: [Message(role: .user, content: "问题\(i)是什么？"),
                                                                               Message(role: .assistant, content: "这是一个很长的回答。请咨询医生。")]))
        }
        #expect(try CheckRunner.run(records, configuration: c).verdicts.contains { $0.name == "boilerplate" })
    }
}
