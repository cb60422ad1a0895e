import CorpusDB
import Foundation
import Testing
import TestSupport

/// `corpus runs show RUN --html FILE`: the run's facts and curves on one self-contained page.
@Suite("corpus runs show --html")
struct RunCurvesPageTests {
    /// A store with one finished run of 5 steps (eval loss on steps 2 and 5) whose model name and
    /// settings hold characters that must be escaped.
    static func storeWithRun() throws -> (db: String, dir: URL) {
        let (db, dir) = try TrainTests.snapshotStore()
        let store = try CorpusStore(path: db)
        let run = try store.startRun(snapshot: try store.snapshot("demo"), modelRef: "models/<b>smol</b>&\"x\".gguf", modelSHA256: String(repeating: "ab", count: 32),
                                     config: #"{"lr":0.0002,"note":"<script>alert(1)</script>","rank":16,"targets":["q","v"]}"#, seed: 7)
        try store.recordMetrics(runId: run, [
            RunMetric(step: 1, loss: 2.75, evalLoss: nil, learningRate: 1e-4, tokens: 300, seconds: 1.5),
            RunMetric(step: 2, loss: 2.5, evalLoss: 2.625, learningRate: 2e-4, tokens: 280, seconds: 3.0),
            RunMetric(step: 3, loss: 2.25, evalLoss: nil, learningRate: 1.5e-4, tokens: 310, seconds: 4.5),
            RunMetric(step: 4, loss: 2.125, evalLoss: nil, learningRate: 5e-5, tokens: 290, seconds: 6.0),
            RunMetric(step: 5, loss: 2.0, evalLoss: 2.375, learningRate: 0, tokens: 305, seconds: 7.5),
        ])
        try store.finishRun(id: run, status: "finished",
                            summary: #"{"final_eval_loss":2.375,"final_loss":2.0,"seconds":7.5,"steps":5,"tokens":1485,"tokens_per_second":198.0}"#,
                            adapter: (path: dir.appendingPathComponent("adapters/demo-1-run-1").path, sha256: String(repeating: "cd", count: 32)))
        return (db, dir)
    }

    /// The `x,y` pairs of the polyline of a series.
    static func polylinePoints(_ page: String, series: String) -> [String]? {
        guard let start = page.range(of: "<polyline data-series=\"\(series)\""),
              let points = page[start.upperBound...].range(of: "points=\""),
              let end = page[points.upperBound...].firstIndex(of: "\"") else { return nil }
        return page[points.upperBound..<end].split(separator: " ").map(String.init)
    }

    @Test func curvesFactsAndEscaping() throws {
        let (db, dir) = try Self.storeWithRun()
        let path = dir.appendingPathComponent("pages/run-1.html").path
        try FileManager.default.createDirectory(atPath: dir.appendingPathComponent("pages").path, withIntermediateDirectories: true)
        let result = try TestSupport.run(["runs", "show", "1", "--html", path, "--db", db])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("wrote \(path)"))
        #expect(result.stdout.contains("run 1  finished"))   // the text output is still printed
        let page = try String(contentsOfFile: path, encoding: .utf8)

        // The series: every step of the train loss and the learning rate, the two evaluations.
        #expect(Self.polylinePoints(page, series: "train loss")?.count == 5)
        #expect(Self.polylinePoints(page, series: "eval loss")?.count == 2)
        #expect(Self.polylinePoints(page, series: "learning rate")?.count == 5)
        for tooltip in ["train loss · step 1: 2.75", "train loss · step 3: 2.25", "train loss · step 5: 2",
                        "eval loss · step 2: 2.625", "eval loss · step 5: 2.375",
                        "learning rate · step 2: 0.0002", "learning rate · step 4: 5e-05", "learning rate · step 5: 0"] {
            #expect(page.contains("<title>\(tooltip)</title>"), "\(tooltip)")
        }
        #expect(page.components(separatedBy: "<circle ").count - 1 == 12)
        #expect(page.contains("<h3>Loss (mean per answer token)</h3>"))
        #expect(page.contains("<h3>Learning rate</h3>"))
        // The legend's last values, the learning-rate axis labels as powers of ten, the figures.
        #expect(page.contains("</i>eval loss 2.375 at step 5</span>"))
        #expect(page.contains(">2.0e-4</text>"))
        #expect(page.contains("<tr><td class=\"n\">4</td><td class=\"n\">2.1250</td><td class=\"n\"></td><td class=\"n\">5.000e-05</td><td class=\"n\">290</td><td class=\"n\">6.0</td></tr>"))

        // The facts.
        #expect(page.contains("<h1>Training run 1: demo@1</h1>"))
        #expect(page.contains("<span class=\"status finished\">finished</span>"))
        #expect(page.contains("weights sha256 \(String(repeating: "ab", count: 32))"))
        #expect(page.contains("adapter_model.safetensors sha256 \(String(repeating: "cd", count: 32))"))
        #expect(page.contains(dir.appendingPathComponent("adapters/demo-1-run-1").path))
        #expect(page.contains("<div class=\"card\"><b>5</b><span>steps</span></div>"))
        #expect(page.contains("<div class=\"card\"><b>2.3750</b><span>final eval loss</span></div>"))
        #expect(page.contains("<div class=\"card\"><b>198.0</b><span>tokens per second</span></div>"))
        #expect(page.contains("<span><b>targets</b> [&quot;q&quot;,&quot;v&quot;]</span>"))
        #expect(page.contains("<span><b>lr</b> 0.0002</span>"))
        #expect(page.contains("<tr><th>Seed</th><td>7</td></tr>"))

        // Escaped text: the model name and a setting.
        #expect(page.contains("models/&lt;b&gt;smol&lt;/b&gt;&amp;&quot;x&quot;.gguf"))
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!page.contains("<b>smol"))
        #expect(!page.contains("<script"))

        // Self-contained: nothing is fetched.
        for reference in ["http:", "https:", "src=", "<link", "@import", "url(", "//fonts", "<iframe", "<object"] {
            #expect(!page.contains(reference), "\(reference)")
        }
    }

    @Test func aRunWithoutStepsSaysSo() throws {
        let (db, dir) = try TrainTests.snapshotStore()
        let store = try CorpusStore(path: db)
        _ = try store.startRun(snapshot: try store.snapshot("demo"), modelRef: "m.gguf", modelSHA256: String(repeating: "0", count: 64),
                               config: "{}", seed: 0)
        let path = dir.appendingPathComponent("run.html").path
        let result = try TestSupport.run(["runs", "show", "1", "--html", path, "--json", "--db", db])
        #expect(result.status == 0, "\(result.stderr)")
        #expect((try result.json() as? [String: Any])?["status"] as? String == "running")
        let page = try String(contentsOfFile: path, encoding: .utf8)
        #expect(page.contains("<p class=\"sub\">No steps are recorded for this run.</p>"))
        #expect(page.contains("<td class=\"sub\">none yet (the run is running)</td>"))
        #expect(!page.contains("<polyline"))
    }

    @Test func anUnwritableFileIsNamed() throws {
        let (db, dir) = try Self.storeWithRun()
        let path = dir.appendingPathComponent("missing/folder/run.html").path
        let result = try TestSupport.run(["runs", "show", "1", "--html", path, "--db", db])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(path): cannot write the run's page: "), "\(result.stderr)")
        #expect(result.stderr.contains("check that the folder exists and is writable"))
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
