import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "Training runs: what was trained on which snapshot and model, the loss, the adapter.",
        subcommands: [RunsList.self, RunsShow.self],
        defaultSubcommand: RunsList.self)

    /// The fields `runs show --json` and `runs list --json` print for a run.
    static func json(_ r: TrainingRun) -> [String: Any] {
        var object: [String: Any] = [
            "id": r.id, "snapshot": r.snapshot, "snapshot_hash": r.snapshotHash, "model": r.modelRef,
            "model_sha256": r.modelSHA256, "seed": r.seed, "status": r.status, "started_at": r.startedAt,
            "tool_version": r.toolVersion,
            "adapter_path": r.adapter?.path ?? NSNull(), "adapter_sha256": r.adapter?.sha256 ?? NSNull(),
        ]
        if let finished = r.finishedAt { object["finished_at"] = finished }
        if let process = r.process { object["pid"] = Int(process.pid); object["host"] = process.host }
        if let config = try? JSONSerialization.jsonObject(with: Data(r.config.utf8)) { object["config"] = config }
        let summary = r.summary.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        for key in ["steps", "final_loss", "final_eval_loss", "tokens_per_second", "seconds", "tokens", "examples", "truncated", "dropped"] {
            object[key] = summary[key] ?? NSNull()
        }
        return object
    }
}

struct RunsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List training runs.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try Exit.reporting {
            let runs = try database.open().runs()
            if output.json {
                Output.printJSON(runs.map(RunsCommand.json))
                return
            }
            guard !runs.isEmpty else {
                print("no training runs yet; `corpus train SNAPSHOT --model M` starts one")
                return
            }
            Output.printTable(header: ["id", "snapshot", "model", "status", "steps", "loss", "eval loss", "adapter"], rows: runs.map { r in
                let j = RunsCommand.json(r)
                func number(_ key: String) -> String { (j[key] as? Double).map { String(format: "%.4f", $0) } ?? "" }
                return ["\(r.id)", r.snapshot, r.modelRef, r.status, (j["steps"] as? Int).map(String.init) ?? "", number("final_loss"),
                        number("final_eval_loss"), r.adapter?.path ?? ""]
            })
        }
    }
}

struct RunsShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One run: configuration, data, model, loss curve and adapter.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Argument(help: "A run id, or an adapter (id, folder or SHA-256).") var reference: String
    @Option(name: .long, help: "Also write the run's curves (loss, eval loss, learning rate) and facts as a self-contained HTML page to this file.")
    var html: String?

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            let found = try Int64(reference).flatMap { try store.run(id: $0) } ?? store.run(adapter: reference)
            guard let r = found else {
                throw CorpusDBError(.notFound, "\(store.path): no run or adapter '\(reference)'; `corpus runs list` shows them")
            }
            let metrics = try store.metrics(runId: r.id)
            if let html {
                try writeHTML(RunCurvesPage(run: r, metrics: metrics, generated: Timestamp.now()), to: html)
            }
            if output.json {
                var object = RunsCommand.json(r)
                object["loss_curve"] = metrics.map { m -> [String: Any] in
                    var o: [String: Any] = ["step": m.step, "loss": m.loss, "learning_rate": m.learningRate, "tokens": m.tokens, "seconds": m.seconds]
                    if let e = m.evalLoss { o["eval_loss"] = e }
                    if !m.extra.isEmpty { o["metrics"] = m.extra }
                    return o
                }
                Output.printJSON(object)
                return
            }
            let j = RunsCommand.json(r)
            print("run \(r.id)  \(r.status)  started \(r.startedAt)\(r.finishedAt.map { ", ended \($0)" } ?? "")  corpus \(r.toolVersion)")
            if r.status == "killed", let process = r.process {
                print("  process \(process.pid) on \(process.host) ended without recording an outcome (killed or crashed); continue it with `corpus train … --resume \(r.adapter?.path ?? "OUT")/checkpoint` if a checkpoint was written")
            } else if r.status == "running", let process = r.process {
                print("  being trained by process \(process.pid) on \(process.host)")
            }
            print("  snapshot \(r.snapshot)  hash \(r.snapshotHash)")
            print("  model \(r.modelRef)  sha256 \(r.modelSHA256)")
            print("  seed \(r.seed)  configuration \(r.config)")
            if let a = r.adapter { print("  adapter \(a.path)  sha256 \(a.sha256)") }
            if let steps = j["steps"] as? Int {
                let loss = (j["final_loss"] as? Double).map { String(format: "%.4f", $0) } ?? "-"
                let eval = (j["final_eval_loss"] as? Double).map { String(format: "%.4f", $0) } ?? "-"
                let speed = (j["tokens_per_second"] as? Double).map { String(format: "%.1f", $0) } ?? "-"
                print("  \(steps) steps, final loss \(loss), eval loss \(eval), \(speed) tokens/s")
            }
            // The loss curve, thinned to about 20 rows, every evaluation kept.
            let every = max(1, metrics.count / 20)
            let rows = metrics.enumerated().filter { $0.offset % every == 0 || $0.offset == metrics.count - 1 || $0.element.evalLoss != nil }.map { $0.element }
            if !rows.isEmpty {
                Output.printTable(header: ["step", "loss", "eval loss", "lr", "tokens", "seconds"], rows: rows.map { m in
                    ["\(m.step)", String(format: "%.4f", m.loss), m.evalLoss.map { String(format: "%.4f", $0) } ?? "",
                     String(format: "%.2e", m.learningRate), "\(m.tokens)", String(format: "%.1f", m.seconds)]
                })
            }
        }
    }

    /// Writes the `--html` page through `AtomicFile` (a reader never sees half a page).
    private func writeHTML(_ page: RunCurvesPage, to path: String) throws {
        do {
            try AtomicFile.write(Data(page.html().utf8), to: URL(fileURLWithPath: path))
        } catch let error as FileWriteError {
            throw CorpusDBError(.invalid, "\(path): cannot write the run's page: \(error.message)")
        }
        Output.error("wrote \(path)")
    }
}
