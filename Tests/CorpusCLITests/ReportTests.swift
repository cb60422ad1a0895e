import CorpusDB
import Foundation
import TestSupport
import Testing

/// `corpus report` and `corpus dups` end to end on the bundled examples: the JSON's shape and
/// exact figures, taxonomy coverage before and after the checks, the HTML page, the groups.
@Suite("corpus report and corpus dups")
struct ReportTests {
    func checkedExamples() throws -> (db: String, dir: URL) {
        try TestSupport.exampleStore()
    }

    @Test func reportBeforeChecksHasCountsOnly() throws {
        let (db, _) = try checkedExamples()
        let report = try #require(try TestSupport.run(["report", "--db", db, "--json"]).json() as? [String: Any])
        #expect(report["records"] as? Int == 26)
        #expect(report["kept"] as? Int == 26)
        #expect(report["config_hash"] == nil)
        #expect((report["checks"] as? [String: Any])?.isEmpty == true)
    }

    @Test func reportJSONShapeAndFigures() throws {
        let (db, dir) = try checkedExamples()
        #expect(try TestSupport.run(["check", "--db", db]).status == 0)
        let taxonomy = TestSupport.packageRoot.appendingPathComponent("examples/taxonomy.json").path
        let html = dir.appendingPathComponent("report.html").path
        let result = try TestSupport.run(["report", "--db", db, "--json", "--taxonomy", taxonomy, "--html", html])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(result.json() as? [String: Any])
        // The fields the issue names, with exact values.
        #expect(report["records"] as? Int == 26)
        #expect(report["exact_duplicates"] as? Int == 2)          // medical rows 6 and 19 repeat 2 and 16
        #expect(report["near_duplicates"] as? Int == 0)
        #expect(report["kept"] as? Int == 24)
        let checks = try #require(report["checks"] as? [String: [String: Any]])
        #expect(checks.count == 14)
        #expect(checks["exact_duplicate"]?["failed"] as? Int == 2)
        #expect(checks["pii"]?["failed"] as? Int == 0)
        #expect(checks["pii"]?["advisory"] as? Bool == true)
        let examples = try #require(checks["exact_duplicate"]?["examples"] as? [[String: Any]])
        #expect(examples.map { $0["record"] as? Int } == [6, 19])
        #expect(examples.first?["detail"] as? String == "duplicate of record 2")
        let tags = try #require(report["tags"] as? [String: [String: Int]])
        #expect(tags["department"] == ["儿科": 3, "内科": 5, "外科": 3, "妇产科": 1, "皮肤科": 2, "眼科": 1])
        #expect(tags["laws"]?.values.reduce(0, +) == 11)
        let lengths = try #require(report["lengths"] as? [String: [String: [Int]]])
        #expect(lengths["answer_chars"]?["counts"] == [0, 0, 0, 24, 2, 0, 0, 0, 0, 0])
        #expect(lengths["prompt_chars"]?["counts"] == [0, 7, 19, 0, 0, 0, 0, 0, 0, 0])
        let sources = try #require(report["sources"] as? [[String: Any]])
        #expect(sources.map { $0["records"] as? Int } == [15, 11])
        #expect(sources.map { $0["kept"] as? Int } == [14, 10])
        // Coverage: 内科 is covered before the checks and thin after (a duplicate leaves), 口腔科 missing.
        let coverage = try #require(report["taxonomy"] as? [[String: Any]])
        let byValue = Dictionary(uniqueKeysWithValues: coverage.compactMap { c in (c["value"] as? String).map { ($0, c) } })
        #expect(byValue["内科"]?["before"] as? Int == 5)
        #expect(byValue["内科"]?["after"] as? Int == 4)
        #expect(byValue["内科"]?["status_before"] as? String == "covered")
        #expect(byValue["内科"]?["status"] as? String == "thin")
        #expect(byValue["口腔科"]?["status"] as? String == "missing")
        #expect(byValue["眼科"]?["status"] as? String == "covered")
        // The page stands alone: no scripts or anything fetched, the charts inline.
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(page.contains("<svg"))
        #expect(page.contains("Coverage of what you need"))
        #expect(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"))

        // --tag narrows the scope.
        let medical = try #require(try TestSupport.run(["report", "--db", db, "--json", "--tag", "department=内科"]).json() as? [String: Any])
        #expect(medical["records"] as? Int == 5)
        #expect(medical["exact_duplicates"] as? Int == 1)
    }

    @Test func dupsShowsGroupsWithTheKeptRecordFirst() throws {
        let (db, _) = try checkedExamples()
        #expect(try TestSupport.run(["check", "--db", db]).status == 0)
        let dups = try #require(try TestSupport.run(["dups", "--db", db, "--json"]).json() as? [String: Any])
        #expect(dups["groups"] as? Int == 2)
        #expect(dups["records"] as? Int == 4)
        let shown = try #require(dups["shown"] as? [[String: Any]])
        #expect(shown.map { $0["representative"] as? Int } == [2, 16])
        #expect(shown.map { ($0["members"] as? [[String: Any]])?.map { $0["id"] as? Int } } == [[2, 6], [16, 19]])
        let text = try TestSupport.run(["dups", "--db", db])
        #expect(text.stdout.contains("group of 2, record 2 kept:"))
        let conflicts = try #require(try TestSupport.run(["dups", "--db", db, "--conflicts", "--json"]).json() as? [String: Any])
        #expect(conflicts["groups"] as? Int == 0)
        // Before any check there is nothing to show, and the message says what to run.
        let (fresh, _) = try checkedExamples()
        let none = try TestSupport.run(["dups", "--db", fresh])
        #expect(none.status == 5)
        #expect(none.stderr.contains("run `corpus check` first"))
    }

    @Test func badTaxonomyIsRefusedWithTheFileNamed() throws {
        let (db, dir) = try checkedExamples()
        let bad = try TestSupport.write(#"{"department": {"内科": 0}}"#, to: "tax.json", in: dir)
        let result = try TestSupport.run(["report", "--db", db, "--taxonomy", bad])
        #expect(result.status == 3)
        #expect(result.stderr.contains("tax.json: department=内科 needs a minimum count of at least 1"))
    }
}
