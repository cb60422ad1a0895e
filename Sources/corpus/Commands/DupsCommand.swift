import ArgumentParser
import CorpusDB
import Foundation
import Quality

struct DupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dups",
        abstract: "Show duplicate groups side by side: the record kept first, then its copies.",
        discussion: "Exact duplicates by default; --near for near duplicates (with the borderline pairs to review), --conflicts for the same question with different answers. Groups come from the newest `corpus check` unless --checks names a configuration.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: JSONOption
    @Flag(name: .long, help: "Near duplicates instead of exact ones.") var near = false
    @Flag(name: .long, help: "Conflicting answers: the same question answered differently.") var conflicts = false
    @Option(name: .long, help: "How many groups to show (largest first).") var show = 10
    @Option(name: .long, help: "Whose groups: default (the newest check configuration) or a configuration hash (8+ characters).") var checks = "default"

    func validate() throws {
        guard !(near && conflicts) else { throw ValidationError("--near and --conflicts are two different lists; give one") }
        guard show >= 0 else { throw ValidationError("--show must be 0 or more") }
    }

    func run() throws {
        try Exit.reporting {
            let store = try database.open()
            guard let hash = try store.resolveChecks(checks) else {
                throw CorpusDBError(.notFound, "\(store.path): no check has run; run `corpus check` first")
            }
            let kind: DuplicateGroup.Kind = near ? .near : conflicts ? .conflict : .exact
            let groups = try store.duplicateGroups(configHash: hash, kind: kind)
            // With --near, the pairs just below the threshold, most similar first, for a person to judge.
            let borderline = near ? try store.duplicateGroups(configHash: hash, kind: .borderline)
                .flatMap { g in g.members.map { (earlier: g.representative, later: $0, similarity: g.similarity[$0] ?? 0) } }
                .sorted { ($0.similarity, -$0.later) > ($1.similarity, -$1.later) } : []
            let shown = groups.sorted { ($0.members.count, -$0.representative) > ($1.members.count, -$1.representative) }.prefix(show)
            func texts(_ id: Int64) throws -> (prompt: String, answer: String) {
                guard let r = try store.record(id: id), let c = try? r.decodedConversation() else { return ("", "") }
                return (c.messages.filter { $0.role == .user }.map(\.content).joined(separator: "\n"),
                        c.messages.filter { $0.role == .assistant }.map(\.content).joined(separator: "\n"))
            }
            if output.json {
                var list: [[String: Any]] = []
                for g in shown {
                    var members: [[String: Any]] = []
                    for id in g.members {
                        let t = try texts(id)
                        var m: [String: Any] = ["id": id, "prompt": t.prompt, "answer": t.answer, "kept": id == g.representative]
                        if let s = g.similarity[id] { m["similarity"] = s }
                        members.append(m)
                    }
                    list.append(["representative": g.representative, "size": g.members.count, "members": members])
                }
                var object: [String: Any] = ["config_hash": hash, "kind": kind.rawValue, "groups": groups.count,
                                             "records": groups.reduce(0) { $0 + $1.members.count }, "shown": list]
                if near {
                    var pairs: [[String: Any]] = []
                    for p in borderline.prefix(show) {
                        let a = try texts(p.earlier), b = try texts(p.later)
                        pairs.append(["earlier": ["id": p.earlier, "prompt": a.prompt, "answer": a.answer],
                                      "later": ["id": p.later, "prompt": b.prompt, "answer": b.answer], "similarity": p.similarity])
                    }
                    object["borderline"] = borderline.count
                    object["borderline_shown"] = pairs
                }
                Output.printJSON(object)
                return
            }
            let noun = kind == .exact ? "exact-duplicate" : kind == .near ? "near-duplicate" : "conflicting-answer"
            print("\(groups.count) \(noun) groups, \(groups.reduce(0) { $0 + $1.members.count }) records (configuration \(hash.prefix(12)))")
            for g in shown {
                let kept = kind == .conflict ? "first" : "kept"      // conflicts are reported, nobody is left out
                print("\ngroup of \(g.members.count), record \(g.representative) \(kept):")
                // Identical copies are shown once, with their ids.
                var variants: [(ids: [Int64], prompt: String, answer: String, similarity: Double?)] = []
                for id in g.members {
                    let t = try texts(id)
                    if let i = variants.firstIndex(where: { $0.prompt == t.prompt && $0.answer == t.answer }) {
                        variants[i].ids.append(id)
                    } else {
                        variants.append(([id], t.prompt, t.answer, g.similarity[id]))
                    }
                }
                Output.printTable(header: ["records", "similarity", "question", "answer"], rows: variants.map { v in
                    let head = v.ids[0] == g.representative ? "#\(v.ids[0]) \(kept)" : "#\(v.ids[0])"
                    let ids = v.ids.count == 1 ? head : v.ids.count <= 3 ? head + ", " + v.ids.dropFirst().map { "#\($0)" }.joined(separator: ", ")
                        : head + " +\(v.ids.count - 1) identical"
                    return [ids, v.similarity.map { String(format: "%.2f", $0) } ?? "", Output.excerpt(v.prompt, 36), Output.excerpt(v.answer, 48)]
                })
            }
            if near {
                print("\n\(borderline.count) borderline pairs (just below the threshold; both records kept): review them, and raise or lower near_duplicates.threshold if they are duplicates or not")
                for p in borderline.prefix(show) {
                    let a = try texts(p.earlier), b = try texts(p.later)
                    print("")
                    Output.printTable(header: ["record", "similarity", "question", "answer"], rows: [
                        ["#\(p.earlier)", "", Output.excerpt(a.prompt, 36), Output.excerpt(a.answer, 48)],
                        ["#\(p.later)", String(format: "%.2f", p.similarity), Output.excerpt(b.prompt, 36), Output.excerpt(b.answer, 48)],
                    ])
                }
            }
        }
    }
}
